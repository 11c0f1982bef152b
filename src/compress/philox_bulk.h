// Bulk generation of the keyed Philox4x32-10 streams of core/rng.h (Note [Keyed randomness]).
//
// Note [Bulk Philox]
// Rng::next_u32 produces one block of four 32-bit values per ten dependent rounds, about 4 ns a
// value here: a compressor that needs a random number per coordinate would spend most of its
// time there. philox_blocks computes many blocks at once with SIMD (SSE2, or AVX2 / AVX-512 when
// the CPU has them, chosen at run time); the arithmetic is integer-only, so every path gives the
// same bits, and those bits are exactly Rng's: value j of the output is the j-th next_u32() of
// Rng(seed, round, client, purpose) after skipping 4 * first_block values (tested against Rng).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/rng.h"

namespace cohort::compress {

// out[4 i + j] = word j of block (first_block + i) of the stream Rng(seed, round, client, purpose),
// for i < nblocks (first_block + nblocks <= 2^32).
void philox_blocks(std::uint64_t seed, std::uint32_t round, std::uint32_t client, Purpose purpose,
                   std::uint32_t first_block, std::size_t nblocks, std::uint32_t* out);

// Which implementation philox_blocks uses on this CPU: "avx512", "avx2" or "sse2".
const char* philox_isa();
// The same with a named implementation (tests): false when this CPU lacks it.
bool philox_blocks_using(const std::string& isa, std::uint64_t seed, std::uint32_t round,
                         std::uint32_t client, Purpose purpose, std::uint32_t first_block,
                         std::size_t nblocks, std::uint32_t* out);

// The sequence Rng(seed, round, client, purpose).next_u32() gives, generated 1024 at a time.
class BulkRng {
 public:
  BulkRng(std::uint64_t seed, std::uint32_t round, std::uint32_t client, Purpose purpose)
      : seed_(seed), round_(round), client_(client), purpose_(purpose) {}
  std::uint32_t next_u32() {
    if (pos_ == kBuffer) refill();
    return buf_[pos_++];
  }

 private:
  static constexpr int kBuffer = 1024;
  void refill() {
    philox_blocks(seed_, round_, client_, purpose_, block_, kBuffer / 4, buf_);
    block_ += kBuffer / 4;
    pos_ = 0;
  }
  std::uint64_t seed_;
  std::uint32_t round_, client_;
  Purpose purpose_;
  std::uint32_t block_ = 0;
  int pos_ = kBuffer;
  std::uint32_t buf_[kBuffer];
};

}  // namespace cohort::compress
