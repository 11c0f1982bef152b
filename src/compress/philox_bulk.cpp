// Note [Bulk Philox]: SIMD Philox4x32-10. Each 64-bit lane carries one block's 32-bit word in its
// low half: _mm_mul_epu32 multiplies exactly those halves, so the high halves may hold anything
// and are never cleaned; the output takes the low halves.
#include "compress/philox_bulk.h"

#include <immintrin.h>

#include "core/isa.h"

// GCC 12 reports false "may be used uninitialized" inside its own AVX-512 intrinsics (GCC
// PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cohort::compress {
namespace {

constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

struct Key {
  std::uint32_t k0, k1, c1, c2, c3;
};

// Scalar reference (used for the tails), identical to Rng::refill.
void block_scalar(const Key& key, std::uint32_t counter, std::uint32_t* out) {
  out[0] = counter;
  out[1] = key.c1;
  out[2] = key.c2;
  out[3] = key.c3;
  Rng::philox4x32_10(out, key.k0, key.k1);
}

// SSE2: 4 blocks per step (two registers of two blocks per state word).
std::size_t blocks_sse2(const Key& key, std::uint32_t first, std::size_t nblocks,
                        std::uint32_t* out) {
  const __m128i m0 = _mm_set1_epi64x(kM0), m1 = _mm_set1_epi64x(kM1);
  const __m128i c1_init = _mm_set1_epi32(static_cast<int>(key.c1));
  const __m128i c2_init = _mm_set1_epi32(static_cast<int>(key.c2));
  const __m128i c3_init = _mm_set1_epi32(static_cast<int>(key.c3));
  std::size_t b = 0;
  for (; b + 4 <= nblocks; b += 4) {
    const std::uint32_t base = first + static_cast<std::uint32_t>(b);
    __m128i a0 = _mm_set_epi64x(base + 1, base), b0 = _mm_set_epi64x(base + 3, base + 2);
    __m128i a1 = c1_init, b1 = c1_init, a2 = c2_init, b2 = c2_init, a3 = c3_init, b3 = c3_init;
    std::uint32_t k0 = key.k0, k1 = key.k1;
    for (int r = 0; r < 10; ++r) {
      const __m128i kk0 = _mm_set1_epi32(static_cast<int>(k0));
      const __m128i kk1 = _mm_set1_epi32(static_cast<int>(k1));
      const __m128i pa0 = _mm_mul_epu32(a0, m0), pb0 = _mm_mul_epu32(b0, m0);
      const __m128i pa1 = _mm_mul_epu32(a2, m1), pb1 = _mm_mul_epu32(b2, m1);
      a0 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(pa1, 32), a1), kk0);
      b0 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(pb1, 32), b1), kk0);
      a2 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(pa0, 32), a3), kk1);
      b2 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(pb0, 32), b3), kk1);
      a1 = pa1;
      b1 = pb1;
      a3 = pa0;
      b3 = pb0;
      k0 += kW0;
      k1 += kW1;
    }
    // [w_b, junk, w_b+1, junk] per word -> blocks b, b+1.
    const __m128i a01l = _mm_unpacklo_epi32(a0, a1), a01h = _mm_unpackhi_epi32(a0, a1);
    const __m128i a23l = _mm_unpacklo_epi32(a2, a3), a23h = _mm_unpackhi_epi32(a2, a3);
    const __m128i b01l = _mm_unpacklo_epi32(b0, b1), b01h = _mm_unpackhi_epi32(b0, b1);
    const __m128i b23l = _mm_unpacklo_epi32(b2, b3), b23h = _mm_unpackhi_epi32(b2, b3);
    auto* o = reinterpret_cast<__m128i*>(out + 4 * b);
    _mm_storeu_si128(o + 0, _mm_unpacklo_epi64(a01l, a23l));
    _mm_storeu_si128(o + 1, _mm_unpacklo_epi64(a01h, a23h));
    _mm_storeu_si128(o + 2, _mm_unpacklo_epi64(b01l, b23l));
    _mm_storeu_si128(o + 3, _mm_unpacklo_epi64(b01h, b23h));
  }
  return b;
}

// Per 128-bit half, word registers hold [w_x, junk, w_x+1, junk] for blocks (0,1) | (2,3).
#define COHORT_AVX_ALWAYS_INLINE inline __attribute__((always_inline))
__attribute__((target("avx2"))) COHORT_AVX_ALWAYS_INLINE void store4_avx2(__m256i w0, __m256i w1,
                                                                          __m256i w2, __m256i w3,
                                                                          std::uint32_t* dst) {
  const __m256i l01 = _mm256_unpacklo_epi32(w0, w1), h01 = _mm256_unpackhi_epi32(w0, w1);
  const __m256i l23 = _mm256_unpacklo_epi32(w2, w3), h23 = _mm256_unpackhi_epi32(w2, w3);
  const __m256i even = _mm256_unpacklo_epi64(l01, l23);  // blocks 0 | 2
  const __m256i odd = _mm256_unpacklo_epi64(h01, h23);   // blocks 1 | 3
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permute2x128_si256(even, odd, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8),
                      _mm256_permute2x128_si256(even, odd, 0x31));
}

// AVX2: G groups of 4 blocks per step; 16 blocks (G = 4) give the scheduler four independent
// chains per word pair (about 5% faster than 8 blocks), the 8-block step covers the rest. A
// round costs 2 multiplies, 2 shifts and 4 xors per 4 blocks here against 2 multiplies, 2 shifts
// and 2 three-way xors (vpternlogd) per 8 blocks on AVX-512, so this path runs at about half
// the AVX-512 rate whatever the schedule.
template <int G>
__attribute__((target("avx2"))) COHORT_AVX_ALWAYS_INLINE void step_avx2(
    std::uint32_t base, std::uint32_t key0, std::uint32_t key1, __m256i c1_init, __m256i c2_init,
    __m256i c3_init, std::uint32_t* dst) {
  const __m256i m0 = _mm256_set1_epi64x(kM0), m1 = _mm256_set1_epi64x(kM1);
  const __m256i lane = _mm256_set_epi64x(3, 2, 1, 0);
  __m256i w0[G], w1[G], w2[G], w3[G];
  for (int g = 0; g < G; ++g) {
    w0[g] = _mm256_add_epi64(_mm256_set1_epi64x(base + 4 * static_cast<std::uint32_t>(g)), lane);
    w1[g] = c1_init;
    w2[g] = c2_init;
    w3[g] = c3_init;
  }
  std::uint32_t k0 = key0, k1 = key1;
  for (int r = 0; r < 10; ++r) {
    const __m256i kk0 = _mm256_set1_epi32(static_cast<int>(k0));
    const __m256i kk1 = _mm256_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < G; ++g) {
      const __m256i p0 = _mm256_mul_epu32(w0[g], m0), p1 = _mm256_mul_epu32(w2[g], m1);
      w0[g] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), w1[g]), kk0);
      w2[g] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), w3[g]), kk1);
      w1[g] = p1;
      w3[g] = p0;
    }
    k0 += kW0;
    k1 += kW1;
  }
  for (int g = 0; g < G; ++g) store4_avx2(w0[g], w1[g], w2[g], w3[g], dst + 16 * g);
}

__attribute__((target("avx2"))) std::size_t blocks_avx2(const Key& key, std::uint32_t first,
                                                        std::size_t nblocks, std::uint32_t* out) {
  const __m256i c1_init = _mm256_set1_epi32(static_cast<int>(key.c1));
  const __m256i c2_init = _mm256_set1_epi32(static_cast<int>(key.c2));
  const __m256i c3_init = _mm256_set1_epi32(static_cast<int>(key.c3));
  std::size_t b = 0;
  for (; b + 16 <= nblocks; b += 16)
    step_avx2<4>(first + static_cast<std::uint32_t>(b), key.k0, key.k1, c1_init, c2_init, c3_init,
                 out + 4 * b);
  for (; b + 8 <= nblocks; b += 8)
    step_avx2<2>(first + static_cast<std::uint32_t>(b), key.k0, key.k1, c1_init, c2_init, c3_init,
                 out + 4 * b);
  return b;
}

// Per 128-bit quarter q, word registers hold [w_2q, junk, w_2q+1, junk].
__attribute__((target("avx512f"))) COHORT_AVX_ALWAYS_INLINE void store8_avx512(
    __m512i w0, __m512i w1, __m512i w2, __m512i w3, std::uint32_t* dst) {
  const __m512i lo_idx = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const __m512i hi_idx = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  const __m512i l01 = _mm512_unpacklo_epi32(w0, w1), h01 = _mm512_unpackhi_epi32(w0, w1);
  const __m512i l23 = _mm512_unpacklo_epi32(w2, w3), h23 = _mm512_unpackhi_epi32(w2, w3);
  const __m512i even = _mm512_unpacklo_epi64(l01, l23);  // blocks 0 | 2 | 4 | 6
  const __m512i odd = _mm512_unpacklo_epi64(h01, h23);   // blocks 1 | 3 | 5 | 7
  _mm512_storeu_si512(dst, _mm512_permutex2var_epi64(even, lo_idx, odd));
  _mm512_storeu_si512(dst + 16, _mm512_permutex2var_epi64(even, hi_idx, odd));
}

// AVX-512: 16 blocks per step.
__attribute__((target("avx512f"))) std::size_t blocks_avx512(const Key& key, std::uint32_t first,
                                                             std::size_t nblocks,
                                                             std::uint32_t* out) {
  const __m512i m0 = _mm512_set1_epi64(kM0), m1 = _mm512_set1_epi64(kM1);
  const __m512i c1_init = _mm512_set1_epi32(static_cast<int>(key.c1));
  const __m512i c2_init = _mm512_set1_epi32(static_cast<int>(key.c2));
  const __m512i c3_init = _mm512_set1_epi32(static_cast<int>(key.c3));
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  std::size_t b = 0;
  for (; b + 16 <= nblocks; b += 16) {
    const std::uint32_t base = first + static_cast<std::uint32_t>(b);
    __m512i a0 = _mm512_add_epi64(_mm512_set1_epi64(base), lane);
    __m512i b0 = _mm512_add_epi64(_mm512_set1_epi64(base + 8), lane);
    __m512i a1 = c1_init, b1 = c1_init, a2 = c2_init, b2 = c2_init, a3 = c3_init, b3 = c3_init;
    std::uint32_t k0 = key.k0, k1 = key.k1;
    for (int r = 0; r < 10; ++r) {
      const __m512i kk0 = _mm512_set1_epi32(static_cast<int>(k0));
      const __m512i kk1 = _mm512_set1_epi32(static_cast<int>(k1));
      const __m512i pa0 = _mm512_mul_epu32(a0, m0), pb0 = _mm512_mul_epu32(b0, m0);
      const __m512i pa1 = _mm512_mul_epu32(a2, m1), pb1 = _mm512_mul_epu32(b2, m1);
      a0 = _mm512_ternarylogic_epi32(_mm512_srli_epi64(pa1, 32), a1, kk0, 0x96);
      b0 = _mm512_ternarylogic_epi32(_mm512_srli_epi64(pb1, 32), b1, kk0, 0x96);
      a2 = _mm512_ternarylogic_epi32(_mm512_srli_epi64(pa0, 32), a3, kk1, 0x96);
      b2 = _mm512_ternarylogic_epi32(_mm512_srli_epi64(pb0, 32), b3, kk1, 0x96);
      a1 = pa1;
      b1 = pb1;
      a3 = pa0;
      b3 = pb0;
      k0 += kW0;
      k1 += kW1;
    }
    store8_avx512(a0, a1, a2, a3, out + 4 * b);
    store8_avx512(b0, b1, b2, b3, out + 4 * b + 32);
  }
  return b;
}

using BlocksFn = std::size_t (*)(const Key&, std::uint32_t, std::size_t, std::uint32_t*);

struct Dispatch {
  BlocksFn fn;
  const char* isa;
};

// Note [One ISA decision]: the path follows active_isa(); the generic path is SSE2, which every
// x86-64 CPU has.
Dispatch dispatch() {
  switch (active_isa()) {
    case Isa::kAvx512:
      return {blocks_avx512, "avx512"};
    case Isa::kAvx2:
      return {blocks_avx2, "avx2"};
    default:
      return {blocks_sse2, "sse2"};
  }
}

void run_blocks(BlocksFn fn, std::uint64_t seed, std::uint32_t round, std::uint32_t client,
                Purpose purpose, std::uint32_t first_block, std::size_t nblocks,
                std::uint32_t* out) {
  const Key key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32), round,
                client, static_cast<std::uint32_t>(purpose)};
  std::size_t done = fn(key, first_block, nblocks, out);
  done += blocks_sse2(key, first_block + static_cast<std::uint32_t>(done), nblocks - done,
                      out + 4 * done);
  for (; done < nblocks; ++done)
    block_scalar(key, first_block + static_cast<std::uint32_t>(done), out + 4 * done);
}

}  // namespace

void philox_blocks(std::uint64_t seed, std::uint32_t round, std::uint32_t client, Purpose purpose,
                   std::uint32_t first_block, std::size_t nblocks, std::uint32_t* out) {
  run_blocks(dispatch().fn, seed, round, client, purpose, first_block, nblocks, out);
}

bool philox_blocks_using(const std::string& isa, std::uint64_t seed, std::uint32_t round,
                         std::uint32_t client, Purpose purpose, std::uint32_t first_block,
                         std::size_t nblocks, std::uint32_t* out) {
  BlocksFn fn = nullptr;
  if (isa == "sse2") fn = blocks_sse2;
  if (isa == "avx2" && cpu_isa() >= Isa::kAvx2) fn = blocks_avx2;
  if (isa == "avx512" && cpu_isa() >= Isa::kAvx512) fn = blocks_avx512;
  if (fn == nullptr) return false;
  run_blocks(fn, seed, round, client, purpose, first_block, nblocks, out);
  return true;
}

const char* philox_isa() { return dispatch().isa; }

}  // namespace cohort::compress
