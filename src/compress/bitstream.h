// Bit-level wire formats: values are packed LSB-first into 64-bit words and stored as bytes
// (little-endian), so a message's size in bits is exact and its bytes are portable.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace cohort::compress {

class BitWriter {
 public:
  // Appends the low `nbits` bits of `value` (0 <= nbits <= 64).
  void put(std::uint64_t value, int nbits) {
    if (nbits == 0) return;
    if (nbits < 64) value &= (std::uint64_t{1} << nbits) - 1;
    acc_ |= value << fill_;
    const int room = 64 - fill_;
    if (nbits >= room) {
      flush_word(acc_);
      acc_ = room == 64 ? 0 : (nbits == room ? 0 : value >> room);
      fill_ = nbits - room;
    } else {
      fill_ += nbits;
    }
    bits_ += static_cast<std::uint64_t>(nbits);
  }
  void put_f32(float v) { put(std::bit_cast<std::uint32_t>(v), 32); }
  void put_u64(std::uint64_t v) { put(v, 64); }
  std::uint64_t bits() const { return bits_; }
  // Finishes the stream: the bytes hold ceil(bits/8) bytes of payload.
  std::vector<std::uint8_t> finish() {
    if (fill_ > 0) flush_word(acc_);
    bytes_.resize((bits_ + 7) / 8);
    acc_ = 0;
    fill_ = 0;
    return std::move(bytes_);
  }

 private:
  void flush_word(std::uint64_t w) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + 8);
    std::memcpy(bytes_.data() + at, &w, 8);  // x86-64 and aarch64 Linux are little-endian
  }
  std::vector<std::uint8_t> bytes_;
  std::uint64_t acc_ = 0, bits_ = 0;
  int fill_ = 0;
};

class BitReader {
 public:
  BitReader(const std::uint8_t* data, std::uint64_t bits) : data_(data), bits_(bits) {}
  std::uint64_t get(int nbits) {
    if (nbits == 0) return 0;
    if (pos_ + static_cast<std::uint64_t>(nbits) > bits_)
      throw std::runtime_error("wire format: read past the end of a message");
    std::uint64_t out = 0;
    int done = 0;
    while (done < nbits) {
      const std::uint64_t byte = pos_ >> 3;
      const int off = static_cast<int>(pos_ & 7);
      const int take = std::min(8 - off, nbits - done);
      const std::uint64_t part = (static_cast<std::uint64_t>(data_[byte]) >> off) &
                                 ((std::uint64_t{1} << take) - 1);
      out |= part << done;
      done += take;
      pos_ += static_cast<std::uint64_t>(take);
    }
    return out;
  }
  float get_f32() { return std::bit_cast<float>(static_cast<std::uint32_t>(get(32))); }
  std::uint64_t get_u64() { return get(64); }
  std::uint64_t position() const { return pos_; }
  std::uint64_t size() const { return bits_; }

 private:
  const std::uint8_t* data_;
  std::uint64_t bits_, pos_ = 0;
};

// ceil(log2(n)) for n >= 1 (0 for n = 1): bits for an index in [0, n).
inline int index_bits(std::uint64_t n) { return n <= 1 ? 0 : 64 - std::countl_zero(n - 1); }

}  // namespace cohort::compress
