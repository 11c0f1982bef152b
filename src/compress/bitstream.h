// Bit-level wire formats: values are packed LSB-first into 64-bit words and stored as bytes
// (little-endian), so a message's size in bits is exact and its bytes are portable.
//
// Note [Fast bit streams]
// The compressors write millions of fields per message, so both ends work a word at a time:
// the writer keeps a 64-bit accumulator and flushes full words into a small staging array that
// is appended to the byte vector in blocks (no per-word vector growth, no zero-filling); the
// reader loads 8 bytes at a time. put_bits / get_bits move whole runs of words (memcpy when the
// stream position is suitably aligned, shift-and-merge otherwise). Every helper has exactly the
// semantics of the equivalent sequence of put(w, 64) / get(64) calls.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
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
  // Appends the first `nbits` bits of a byte array read LSB-first (bit i is bit i % 8 of byte
  // i / 8; bits of the last byte beyond nbits are ignored): the same as put(word, 64) for each
  // little-endian 8-byte word, then put(rest, nbits % 64).
  void put_bits(const void* data, std::uint64_t nbits) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    const std::uint64_t full = nbits / 64;
    const int rest = static_cast<int>(nbits % 64);
    if (fill_ == 0) {
      flush_staging();
      append_bytes(p, full * 8);
    } else if (fill_ % 8 == 0 && full > 0) {
      // Byte-aligned (a float32 norm or scale before the data, say): the stream is the pending
      // bytes followed by the data's bytes; the last fill_ / 8 of them become the new pending
      // bits, so the bytes stay whole words.
      flush_staging();
      const auto k = static_cast<std::size_t>(fill_ / 8);
      append_bytes(&acc_, k);
      append_bytes(p, full * 8);
      std::uint64_t tail = 0;
      std::memcpy(&tail, bytes_.data() + bytes_.size() - k, k);
      bytes_.resize(bytes_.size() - k);
      acc_ = tail;
    } else {
      const int sh = fill_;
      std::uint64_t acc = acc_;
      for (std::uint64_t i = 0; i < full; ++i) {
        std::uint64_t w;
        std::memcpy(&w, p + 8 * i, 8);
        flush_word(acc | (w << sh));
        acc = w >> (64 - sh);
      }
      acc_ = acc;
    }
    bits_ += full * 64;
    if (rest > 0) {
      std::uint64_t w = 0;
      std::memcpy(&w, p + 8 * full, static_cast<std::size_t>((rest + 7) / 8));
      put(w, rest);
    }
  }
  // Capacity hint: the stream will grow by about `nbits` more bits.
  void reserve(std::uint64_t nbits) { bytes_.reserve(bytes_.size() + nbits / 8 + 64); }
  std::uint64_t bits() const { return bits_; }
  // Finishes the stream: the bytes hold ceil(bits/8) bytes of payload.
  std::vector<std::uint8_t> finish() {
    if (fill_ > 0) flush_word(acc_);
    flush_staging();
    bytes_.resize((bits_ + 7) / 8);
    acc_ = 0;
    fill_ = 0;
    return std::move(bytes_);
  }

 private:
  static constexpr int kStagingWords = 256;
  void flush_word(std::uint64_t w) {
    staging_[staged_++] = w;
    if (staged_ == kStagingWords) flush_staging();
  }
  void flush_staging() {
    append_bytes(staging_, static_cast<std::size_t>(staged_) * 8);
    staged_ = 0;
  }
  void append_bytes(const void* p, std::size_t n) {
    if (n == 0) return;
    const auto* b = static_cast<const std::uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);  // x86-64 and aarch64 Linux are little-endian
  }
  std::vector<std::uint8_t> bytes_;
  std::uint64_t staging_[kStagingWords];
  int staged_ = 0;
  std::uint64_t acc_ = 0, bits_ = 0;
  int fill_ = 0;
};

class BitReader {
 public:
  BitReader(const std::uint8_t* data, std::uint64_t bits)
      : data_(data), bits_(bits), nbytes_((bits + 7) / 8) {}
  std::uint64_t get(int nbits) {
    if (nbits == 0) return 0;
    if (pos_ + static_cast<std::uint64_t>(nbits) > bits_)
      throw std::runtime_error("wire format: read past the end of a message");
    const std::uint64_t byte = pos_ >> 3;
    const int off = static_cast<int>(pos_ & 7);
    if (byte + 9 <= nbytes_) {  // fast path: one 8-byte load plus at most one more byte
      std::uint64_t w;
      std::memcpy(&w, data_ + byte, 8);
      std::uint64_t out = w >> off;
      if (off + nbits > 64) out |= static_cast<std::uint64_t>(data_[byte + 8]) << (64 - off);
      if (nbits < 64) out &= (std::uint64_t{1} << nbits) - 1;
      pos_ += static_cast<std::uint64_t>(nbits);
      return out;
    }
    return get_slow(nbits);
  }
  float get_f32() { return std::bit_cast<float>(static_cast<std::uint32_t>(get(32))); }
  std::uint64_t get_u64() { return get(64); }
  // Reads `nbits` bits into ceil(nbits/8) bytes, LSB-first (the inverse of put_bits; bits of the
  // last byte beyond nbits are zero).
  void get_bits(void* data, std::uint64_t nbits) {
    if (pos_ + nbits > bits_)
      throw std::runtime_error("wire format: read past the end of a message");
    auto* p = static_cast<std::uint8_t*>(data);
    const std::uint64_t full = nbits / 64;
    const int rest = static_cast<int>(nbits % 64);
    if ((pos_ & 7) == 0) {
      std::memcpy(p, data_ + (pos_ >> 3), full * 8);
      pos_ += full * 64;
    } else {
      for (std::uint64_t i = 0; i < full; ++i) {
        const std::uint64_t w = get(64);
        std::memcpy(p + 8 * i, &w, 8);
      }
    }
    if (rest > 0) {
      const std::uint64_t w = get(rest);
      std::memcpy(p + 8 * full, &w, static_cast<std::size_t>((rest + 7) / 8));
    }
  }
  // Looks at the next min(64, remaining) bits without consuming them (missing bits read as 0).
  std::uint64_t peek64() const {
    const std::uint64_t byte = pos_ >> 3;
    const int off = static_cast<int>(pos_ & 7);
    std::uint64_t w = 0;
    if (byte + 9 <= nbytes_) {
      std::memcpy(&w, data_ + byte, 8);
      w >>= off;
      if (off > 0) w |= static_cast<std::uint64_t>(data_[byte + 8]) << (64 - off);
    } else {
      unsigned __int128 acc = 0;
      for (std::uint64_t i = 0; i < 9 && byte + i < nbytes_; ++i)
        acc |= static_cast<unsigned __int128>(data_[byte + i]) << (8 * i);
      w = static_cast<std::uint64_t>(acc >> off);
    }
    const std::uint64_t left = bits_ - pos_;
    if (left < 64) w &= (std::uint64_t{1} << left) - 1;
    return w;
  }
  // Consumes `nbits` bits (which the caller has looked at with peek64).
  void skip(std::uint64_t nbits) {
    if (pos_ + nbits > bits_)
      throw std::runtime_error("wire format: read past the end of a message");
    pos_ += nbits;
  }
  std::uint64_t position() const { return pos_; }
  std::uint64_t size() const { return bits_; }

 private:
  std::uint64_t get_slow(int nbits) {
    std::uint64_t out = 0;
    int done = 0;
    while (done < nbits) {
      const std::uint64_t byte = pos_ >> 3;
      const int off = static_cast<int>(pos_ & 7);
      const int take = std::min(8 - off, nbits - done);
      const std::uint64_t part =
          (static_cast<std::uint64_t>(data_[byte]) >> off) & ((std::uint64_t{1} << take) - 1);
      out |= part << done;
      done += take;
      pos_ += static_cast<std::uint64_t>(take);
    }
    return out;
  }
  const std::uint8_t* data_;
  std::uint64_t bits_, nbytes_, pos_ = 0;
};

// Packs fields LSB-first into a caller's word array, keeping its state in registers (a
// BitWriter keeps it in memory, which a hot loop pays for); hand the words to
// BitWriter::put_bits(words, bits()) afterwards. The array needs ceil(bits / 64) words.
class WordPacker {
 public:
  explicit WordPacker(std::uint64_t* words) : words_(words) {}
  // Appends the low `nbits` bits of value (1 <= nbits <= 64; higher bits of value must be 0).
  void put(std::uint64_t value, int nbits) {
    acc_ |= value << fill_;
    const int total = fill_ + nbits;
    if (total >= 64) {
      words_[n_++] = acc_;
      acc_ = total == 64 ? 0 : value >> (64 - fill_);
      fill_ = total - 64;
    } else {
      fill_ = total;
    }
  }
  // Appends a whole 64-bit word; only while the stream is word-aligned (bits() % 64 == 0).
  void put_aligned_word(std::uint64_t w) { words_[n_++] = w; }
  std::uint64_t bits() const {
    return 64 * static_cast<std::uint64_t>(n_) + static_cast<std::uint64_t>(fill_);
  }
  // Stores the partial last word; call once, before reading the words.
  void finish() {
    if (fill_ > 0) words_[n_] = acc_;
  }

 private:
  std::uint64_t* words_;
  std::size_t n_ = 0;
  std::uint64_t acc_ = 0;
  int fill_ = 0;
};

// ceil(log2(n)) for n >= 1 (0 for n = 1): bits for an index in [0, n).
inline int index_bits(std::uint64_t n) { return n <= 1 ? 0 : 64 - std::countl_zero(n - 1); }

}  // namespace cohort::compress
