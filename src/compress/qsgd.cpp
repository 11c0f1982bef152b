// Note [QSGD kernels]
// Encoding works in chunks of kChunk values (the scratch stays in L1): Philox bytes for the
// chunk (philox_blocks), one SIMD pass that computes every value's code g | l << 1 and marks the
// ties of Note [QSGD rounding], a scalar fix-up of the (about 1 in 256) ties in index order, then
// packing. For s <= 127 the codes are bytes: the SSE2 pass narrows to 8-bit lanes after the
// float work; on the AVX-512 path (F, BW, DQ, VL; Note [One ISA decision]) a 16-lane version
// with mask registers does the same operations, and on the AVX2 path two 8-lane registers of
// 32-bit codes narrowed to 16 bytes. Fixed fields of w <= 8 bits are
// packed 16 at a time by pairwise merging in SIMD lanes (8 -> 16 -> 32 -> 64-bit lanes; w = 4 is
// one nibble merge) into local words (WordPacker), one put_bits per chunk; with AVX-512 and
// w = 4 (s = 4 .. 7) the quantiser packs the nibbles itself (AVX2 too) and the ties are fixed
// in place. Decoding splits the same way in reverse and converts 4 (SSE2), 8 (AVX2) or 16
// (AVX-512) codes per float operation; the AVX-512 decoder covers the partial lines at both ends of a bucket with masked
// stores, so small buckets (QSGD's usual 512) keep the 16-wide path whatever the output's
// alignment, and streams the whole lines of a large layer. Elias
// streams are dominated by level 0 (the single bit 1), so both ends move runs of those 16 to 64
// at a time. Every path gives the same bytes and values (tested).
#include "compress/qsgd.h"

#include <immintrin.h>
#include <x86intrin.h>  // _m_prefetchw: clang declares it here, not in immintrin.h

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "compress/philox_bulk.h"
#include "core/errors.h"
#include "core/isa.h"

// GCC 12 reports false "may be used uninitialized" inside its own AVX-512 intrinsics (GCC
// PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cohort::compress {
namespace {

constexpr std::size_t kChunk = 2048;
constexpr std::size_t kNormBlock = 1024;
// The quantiser prefetches one line per 16 values, kAhead chunks ahead: one sequential stream is
// limited by the hardware prefetcher to about half the memory's rate here, and a burst of a
// whole chunk's lines at once stalls on the fill buffers.
constexpr std::size_t kAhead = 4;
constexpr std::size_t kStreamMin = std::size_t{1} << 20;  // Note [Streaming stores] in sign.cpp

// The norm: per block of kNormBlock values, 16 float lanes (lane j sums x_i^2 for i = j mod 16,
// multiply then add, in index order), the lanes added in double in lane order, the blocks in
// block order. The AVX-512 path runs four blocks at once (four read streams: one sequential
// stream is prefetcher-bound here at about half the memory's rate) with the same operations, so
// both paths give the same bits.
// fp-contract off here too: a -march=native build could otherwise fuse this path's multiply-add.
__attribute__((optimize("fp-contract=off"))) void block_lanes_sse2(const float* v,
                                                                   std::size_t start,
                                                                   std::size_t end, float* lanes) {
  std::size_t i = start;
  __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (; i + 16 <= end; i += 16) {
    const __m128 x0 = _mm_loadu_ps(v + i), x1 = _mm_loadu_ps(v + i + 4);
    const __m128 x2 = _mm_loadu_ps(v + i + 8), x3 = _mm_loadu_ps(v + i + 12);
    s0 = _mm_add_ps(s0, _mm_mul_ps(x0, x0));
    s1 = _mm_add_ps(s1, _mm_mul_ps(x1, x1));
    s2 = _mm_add_ps(s2, _mm_mul_ps(x2, x2));
    s3 = _mm_add_ps(s3, _mm_mul_ps(x3, x3));
  }
  _mm_storeu_ps(lanes, s0);
  _mm_storeu_ps(lanes + 4, s1);
  _mm_storeu_ps(lanes + 8, s2);
  _mm_storeu_ps(lanes + 12, s3);
  for (; i < end; ++i) lanes[(i - start) % 16] += v[i] * v[i];
}

// Four whole blocks from v + start (4 * kNormBlock values) into lanes[4][16].
// fp-contract off: a fused multiply-add would round differently from the SSE2 path.
__attribute__((target("avx512f"), optimize("fp-contract=off"))) void four_blocks_avx512(
    const float* v, float* lanes) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  const float *p0 = v, *p1 = v + kNormBlock, *p2 = v + 2 * kNormBlock, *p3 = v + 3 * kNormBlock;
  for (std::size_t i = 0; i < kNormBlock; i += 16) {
    const __m512 x0 = _mm512_loadu_ps(p0 + i), x1 = _mm512_loadu_ps(p1 + i);
    const __m512 x2 = _mm512_loadu_ps(p2 + i), x3 = _mm512_loadu_ps(p3 + i);
    s0 = _mm512_add_ps(s0, _mm512_mul_ps(x0, x0));
    s1 = _mm512_add_ps(s1, _mm512_mul_ps(x1, x1));
    s2 = _mm512_add_ps(s2, _mm512_mul_ps(x2, x2));
    s3 = _mm512_add_ps(s3, _mm512_mul_ps(x3, x3));
  }
  _mm512_storeu_ps(lanes, s0);
  _mm512_storeu_ps(lanes + 16, s1);
  _mm512_storeu_ps(lanes + 32, s2);
  _mm512_storeu_ps(lanes + 48, s3);
}

// The same on AVX2: a block's 16 lanes are two registers of 8.
__attribute__((target("avx2"), optimize("fp-contract=off"))) void four_blocks_avx2(
    const float* v, float* lanes) {
  __m256 s[8];
  for (auto& x : s) x = _mm256_setzero_ps();
  for (std::size_t i = 0; i < kNormBlock; i += 16)
    for (std::size_t b = 0; b < 4; ++b)
      for (std::size_t h = 0; h < 2; ++h) {
        const __m256 x = _mm256_loadu_ps(v + b * kNormBlock + i + 8 * h);
        s[2 * b + h] = _mm256_add_ps(s[2 * b + h], _mm256_mul_ps(x, x));
      }
  for (int j = 0; j < 8; ++j) _mm256_storeu_ps(lanes + 8 * j, s[j]);
}

bool cpu_has_avx512();
bool cpu_has_avx2();

float l2_norm(const float* v, std::size_t n) {
  double total = 0;
  std::size_t i = 0;
  alignas(64) float lanes[64];
  if (cpu_has_avx512() || cpu_has_avx2())
    for (; i + 4 * kNormBlock <= n; i += 4 * kNormBlock) {
      if (cpu_has_avx512())
        four_blocks_avx512(v + i, lanes);
      else
        four_blocks_avx2(v + i, lanes);
      for (float x : lanes) total += x;  // block by block, each in lane order
    }
  while (i < n) {
    const std::size_t end = std::min(n, i + kNormBlock);
    block_lanes_sse2(v, i, end, lanes);
    for (int j = 0; j < 16; ++j) total += lanes[j];
    i = end;
  }
  return static_cast<float>(std::sqrt(total));
}

float max_abs(const float* v, std::size_t n) {
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
  __m128 m0 = _mm_setzero_ps(), m1 = m0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = _mm_max_ps(m0, _mm_and_ps(_mm_loadu_ps(v + i), abs_mask));
    m1 = _mm_max_ps(m1, _mm_and_ps(_mm_loadu_ps(v + i + 4), abs_mask));
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_max_ps(m0, m1));
  float m = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  for (; i < n; ++i) m = std::max(m, std::fabs(v[i]));
  return m;
}

// The scalar twin of the SIMD rounding (Note [QSGD rounding]); the same float operations.
struct Rounding {
  int l, t;  // floor(Z / 256), Z mod 256
  float f;   // z - Z
};
inline Rounding round_parts(float x, float r256, float s256) {
  float z = std::fabs(x) * r256;
  z = z < s256 ? z : s256;  // _mm_min_ps(z, s256)
  const int big = static_cast<int>(z);
  return {big >> 8, big & 255, z - static_cast<float>(big)};
}
inline std::uint32_t make_code(float x, int level) {
  return static_cast<std::uint32_t>(level) << 1 |
         static_cast<std::uint32_t>(std::signbit(x) && level > 0);
}

// s <= 127: codes g | l << 1 as bytes for v[0, m), 16 values per step, levels and the byte
// comparison in 8-bit lanes. Ties (r == t) get level l and bit i of `ties` (zeroed by the caller).
void quantize_bytes(const float* v, std::size_t m, const std::uint8_t* rb, float r256, float s256,
                    std::uint8_t* codes, std::uint64_t* ties) {
  const __m128 rv = _mm_set1_ps(r256), sv = _mm_set1_ps(s256);
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
  const __m128i low8 = _mm_set1_epi16(0xFF), one8 = _mm_set1_epi8(1), zi = _mm_setzero_si128();
  std::uint64_t tacc = 0;
  std::size_t i = 0;
  for (; i + 16 <= m; i += 16) {
    __m128 x[4];
    __m128i big[4];
    for (int q = 0; q < 4; ++q) {
      x[q] = _mm_loadu_ps(v + i + 4 * q);
      big[q] = _mm_cvttps_epi32(_mm_min_ps(_mm_mul_ps(_mm_and_ps(x[q], abs_mask), rv), sv));
    }
    const __m128i za = _mm_packs_epi32(big[0], big[1]), zb = _mm_packs_epi32(big[2], big[3]);
    const __m128i l8 = _mm_packus_epi16(_mm_srli_epi16(za, 8), _mm_srli_epi16(zb, 8));
    const __m128i t8 = _mm_packus_epi16(_mm_and_si128(za, low8), _mm_and_si128(zb, low8));
    const __m128i r8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rb + i));
    const __m128i up = _mm_min_epu8(_mm_subs_epu8(t8, r8), one8);  // 1 where r < t
    const __m128i lev = _mm_add_epi8(l8, up);
    // the float's sign survives the saturating narrowing of its bit pattern
    const __m128i neg =
        _mm_packs_epi16(_mm_packs_epi32(_mm_castps_si128(x[0]), _mm_castps_si128(x[1])),
                        _mm_packs_epi32(_mm_castps_si128(x[2]), _mm_castps_si128(x[3])));
    const __m128i g =
        _mm_and_si128(_mm_and_si128(_mm_cmpgt_epi8(zi, neg), _mm_cmpgt_epi8(lev, zi)), one8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i),
                     _mm_or_si128(_mm_add_epi8(lev, lev), g));
    const auto tmask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(t8, r8)));
    tacc |= static_cast<std::uint64_t>(tmask) << (i % 64);
    if (i % 64 == 48) {  // ties kept in a register: no store-to-load chain between steps
      ties[i / 64] = tacc;
      tacc = 0;
    }
  }
  if (i % 64 != 0) ties[i / 64] |= tacc;
  for (; i < m; ++i) {
    const Rounding r = round_parts(v[i], r256, s256);
    if (rb[i] == r.t) ties[i / 64] |= std::uint64_t{1} << (i % 64);
    codes[i] = static_cast<std::uint8_t>(make_code(v[i], r.l + (rb[i] < r.t)));
  }
}

// The AVX-512 quantisers' constants (Note [QSGD rounding]).
struct Avx512Rounding {
  __m512 rv, sv;
  __m512i abs_mask, low8, one, zero, low4;
};

// Codes g | l << 1 of values i .. i + 15 of v (all present), one per 32-bit lane, and in *tie
// the mask of their ties: the same IEEE float32 and integer operations as quantize_bytes, with
// masks instead of byte tricks, so the same codes.
[[gnu::always_inline]] inline __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
__m512i codes16_avx512(const Avx512Rounding& k, const float* v, const std::uint8_t* rb,
                       std::size_t i, __mmask16* tie) {
  const __m512i xb = _mm512_loadu_si512(v + i);
  const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(xb, k.abs_mask));
  const __m512i big = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_mul_ps(a, k.rv), k.sv));
  const __m512i l = _mm512_srli_epi32(big, 8), t = _mm512_and_si512(big, k.low8);
  const __m512i r =
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rb + i)));
  const __m512i lev = _mm512_mask_add_epi32(l, _mm512_cmplt_epu32_mask(r, t), l, k.one);
  const __mmask16 g = _mm512_movepi32_mask(xb) & _mm512_cmpgt_epi32_mask(lev, k.zero);
  const __m512i twice = _mm512_slli_epi32(lev, 1);
  *tie = _mm512_cmpeq_epi32_mask(r, t);
  return _mm512_mask_or_epi32(twice, g, twice, k.one);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) Avx512Rounding avx512_rounding(
    float r256, float s256) {
  return {_mm512_set1_ps(r256),         _mm512_set1_ps(s256),  _mm512_set1_epi32(0x7FFFFFFF),
          _mm512_set1_epi32(0xFF),      _mm512_set1_epi32(1), _mm512_setzero_si512(),
          _mm512_set1_epi64(0xF)};
}

// Stores the code c of value i: one per element of out, or (kPacked, w = 4) in the nibble of
// byte i / 2 that pack_fixed_bytes gives it (byte k = c_2k | c_2k+1 << 4).
template <bool kPacked, class Code>
inline void put_code(Code* out, std::size_t i, std::uint32_t c) {
  if constexpr (kPacked) {
    Code& b = out[i / 2];
    b = static_cast<Code>(i % 2 == 0 ? (b & 0xF0) | c : (b & 0x0F) | c << 4);
  } else {
    out[i] = static_cast<Code>(c);
  }
}

// w = 4 (s = 4 .. 7) fixed coding with AVX-512 packs the codes in the quantiser (kPacked), in
// the same pass, so the chunk's codes are never stored one per byte and read back. The 64-bit
// lane k of the code vector holds c_2k (low half) and c_2k+1 (high half), both below 16:
// (lane & 15) | lane >> 28 is their byte.
//
// A packed chunk of kNibbleChunk values is read as four quarter streams side by side (16 values
// of each in turn): after the norm this is the pass that reads the layer from memory, and one
// sequential stream is limited by the prefetcher to well below what several get. Each value's
// code and tie bit do not depend on the order they are computed in.
constexpr std::size_t kNibbleChunk = 4 * kChunk;

// Values i .. i + 15 of v (all present): their codes go to out (bytes, or packed at out + i / 2),
// and the mask of their ties is returned.
template <bool kPacked>
[[gnu::always_inline]] inline __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
__mmask16 step16_avx512(const Avx512Rounding& k, const float* v, const std::uint8_t* rb,
                        std::size_t i, std::uint8_t* out) {
  __mmask16 tie;
  const __m512i code = codes16_avx512(k, v, rb, i, &tie);
  if constexpr (kPacked) {
    const __m512i pairs =
        _mm512_or_si512(_mm512_and_si512(code, k.low4), _mm512_srli_epi64(code, 28));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i / 2), _mm512_cvtepi64_epi8(pairs));
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(code));
  }
  return tie;
}

// quantize_bytes with AVX-512, 16 values per step; kPacked: 4-bit codes, two per byte.
template <bool kPacked>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void quantize_avx512(
    const float* v, std::size_t m, const std::uint8_t* rb, float r256, float s256,
    std::uint8_t* out, std::uint64_t* ties) {
  const Avx512Rounding k = avx512_rounding(r256, s256);
  std::size_t i = 0;
  if (kPacked && m == kNibbleChunk) {  // four quarter streams; a quarter is whole tie words
    constexpr std::size_t Q = kNibbleChunk / 4;
    std::uint64_t tacc[4] = {0, 0, 0, 0};
    for (; i < Q; i += 16) {
      for (std::size_t q = 0; q < 4; ++q) {
        _mm_prefetch(reinterpret_cast<const char*>(v + q * Q + i + kNibbleChunk), _MM_HINT_T0);
        tacc[q] |= static_cast<std::uint64_t>(step16_avx512<kPacked>(k, v, rb, q * Q + i, out))
                   << (i % 64);
      }
      if (i % 64 == 48)
        for (std::size_t q = 0; q < 4; ++q) {
          ties[(q * Q + i) / 64] = tacc[q];
          tacc[q] = 0;
        }
    }
    return;
  }
  std::uint64_t tacc = 0;
  for (; i + 16 <= m; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(v + i + kAhead * kChunk), _MM_HINT_T0);
    tacc |= static_cast<std::uint64_t>(step16_avx512<kPacked>(k, v, rb, i, out)) << (i % 64);
    if (i % 64 == 48) {
      ties[i / 64] = tacc;
      tacc = 0;
    }
  }
  if (i % 64 != 0) ties[i / 64] |= tacc;
  for (; i < m; ++i) {
    const Rounding r = round_parts(v[i], r256, s256);
    if (rb[i] == r.t) ties[i / 64] |= std::uint64_t{1} << (i % 64);
    put_code<kPacked>(out, i, make_code(v[i], r.l + (rb[i] < r.t)));
  }
}

// The AVX2 quantiser: the codes of 8 values per register (the same operations as
// quantize_words), 16 values per step narrowed to bytes in order; kPacked: the nibble pairs of
// pack_fixed_bytes. Like quantize_avx512 it packs w = 4 fields itself and reads a whole packed
// chunk as four quarter streams.
[[gnu::always_inline]] inline __attribute__((target("avx2"))) __m256i codes8_avx2(
    const float* v, const std::uint8_t* rb, std::size_t i, __m256 rv, __m256 sv, unsigned* tie) {
  const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
  const __m256 a = _mm256_castsi256_ps(_mm256_and_si256(xb, _mm256_set1_epi32(0x7FFFFFFF)));
  const __m256i big = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_mul_ps(a, rv), sv));
  const __m256i l = _mm256_srli_epi32(big, 8), t = _mm256_and_si256(big, _mm256_set1_epi32(0xFF));
  const __m256i r =
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rb + i)));
  const __m256i lev = _mm256_sub_epi32(l, _mm256_cmpgt_epi32(t, r));  // +1 where r < t
  const __m256i g = _mm256_srli_epi32(
      _mm256_and_si256(xb, _mm256_cmpgt_epi32(lev, _mm256_setzero_si256())), 31);
  *tie = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(r, t))));
  return _mm256_or_si256(_mm256_slli_epi32(lev, 1), g);
}

template <bool kPacked>
[[gnu::always_inline]] inline __attribute__((target("avx2"))) unsigned step16_avx2(
    const float* v, const std::uint8_t* rb, std::size_t i, __m256 rv, __m256 sv,
    std::uint8_t* out) {
  unsigned t0, t1;
  const __m256i c0 = codes8_avx2(v, rb, i, rv, sv, &t0);
  const __m256i c1 = codes8_avx2(v, rb, i + 8, rv, sv, &t1);
  // 16-bit lanes [c0 0-3, c1 0-3 | c0 4-7, c1 4-7] -> [c0 0-7 | c1 0-7] -> 16 bytes in order
  const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(c0, c1), 0xD8);
  const __m128i b =
      _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
  if constexpr (kPacked) {
    const __m128i pairs = _mm_and_si128(_mm_or_si128(b, _mm_srli_epi16(b, 4)), _mm_set1_epi16(0xFF));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i / 2), _mm_packus_epi16(pairs, pairs));
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), b);
  }
  return t0 | t1 << 8;
}

template <bool kPacked>
__attribute__((target("avx2"))) void quantize_avx2(const float* v, std::size_t m,
                                                   const std::uint8_t* rb, float r256, float s256,
                                                   std::uint8_t* out, std::uint64_t* ties) {
  const __m256 rv = _mm256_set1_ps(r256), sv = _mm256_set1_ps(s256);
  std::size_t i = 0;
  if (kPacked && m == kNibbleChunk) {
    constexpr std::size_t Q = kNibbleChunk / 4;
    std::uint64_t tacc[4] = {0, 0, 0, 0};
    for (; i < Q; i += 16) {
      for (std::size_t q = 0; q < 4; ++q) {
        _mm_prefetch(reinterpret_cast<const char*>(v + q * Q + i + kNibbleChunk), _MM_HINT_T0);
        tacc[q] |= static_cast<std::uint64_t>(step16_avx2<kPacked>(v, rb, q * Q + i, rv, sv, out))
                   << (i % 64);
      }
      if (i % 64 == 48)
        for (std::size_t q = 0; q < 4; ++q) {
          ties[(q * Q + i) / 64] = tacc[q];
          tacc[q] = 0;
        }
    }
    return;
  }
  std::uint64_t tacc = 0;
  for (; i + 16 <= m; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(v + i + kAhead * kChunk), _MM_HINT_T0);
    tacc |= static_cast<std::uint64_t>(step16_avx2<kPacked>(v, rb, i, rv, sv, out)) << (i % 64);
    if (i % 64 == 48) {
      ties[i / 64] = tacc;
      tacc = 0;
    }
  }
  if (i % 64 != 0) ties[i / 64] |= tacc;
  for (; i < m; ++i) {
    const Rounding r = round_parts(v[i], r256, s256);
    if (rb[i] == r.t) ties[i / 64] |= std::uint64_t{1} << (i % 64);
    put_code<kPacked>(out, i, make_code(v[i], r.l + (rb[i] < r.t)));
  }
}

using QuantizeBytes = void (*)(const float*, std::size_t, const std::uint8_t*, float, float,
                               std::uint8_t*, std::uint64_t*);
constexpr QuantizeBytes quantize_bytes_avx512 = quantize_avx512<false>;
constexpr QuantizeBytes quantize_nibbles_avx512 = quantize_avx512<true>;
constexpr QuantizeBytes quantize_bytes_avx2 = quantize_avx2<false>;
constexpr QuantizeBytes quantize_nibbles_avx2 = quantize_avx2<true>;

// Note [One ISA decision]: the AVX-512 kernels need f, bw, dq and vl, as active_isa()'s AVX-512.
bool cpu_has_avx512() { return active_isa() == Isa::kAvx512; }
bool cpu_has_avx2() { return active_isa() == Isa::kAvx2; }

// A kernel chosen by select_qsgd_kernel (tests), else null: the ISA decision's.
QuantizeBytes& selected_kernel() {
  static QuantizeBytes k = nullptr;
  return k;
}

QuantizeBytes quantize_bytes_kernel() {
  if (selected_kernel() != nullptr) return selected_kernel();
  return cpu_has_avx512() ? quantize_bytes_avx512
         : cpu_has_avx2() ? quantize_bytes_avx2
                          : quantize_bytes;
}

// The quantiser that packs w = 4 fields itself, where the byte kernel has one.
QuantizeBytes quantize_nibbles_kernel() {
  const QuantizeBytes k = quantize_bytes_kernel();
  return k == quantize_bytes_avx512 ? quantize_nibbles_avx512
         : k == quantize_bytes_avx2 ? quantize_nibbles_avx2
                                    : nullptr;
}

// Any s: codes as 32-bit values, 4 per step.
void quantize_words(const float* v, std::size_t m, const std::uint8_t* rb, float r256, float s256,
                    std::uint32_t* codes, std::uint64_t* ties) {
  const __m128 rv = _mm_set1_ps(r256), sv = _mm_set1_ps(s256);
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
  const __m128i low8 = _mm_set1_epi32(0xFF), zi = _mm_setzero_si128();
  std::uint64_t tacc = 0;
  std::size_t i = 0;
  for (; i + 16 <= m; i += 16) {
    const __m128i r8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rb + i));
    const __m128i r16l = _mm_unpacklo_epi8(r8, zi), r16h = _mm_unpackhi_epi8(r8, zi);
    const __m128i r32[4] = {_mm_unpacklo_epi16(r16l, zi), _mm_unpackhi_epi16(r16l, zi),
                            _mm_unpacklo_epi16(r16h, zi), _mm_unpackhi_epi16(r16h, zi)};
    __m128i tie[4];
    for (int q = 0; q < 4; ++q) {
      const __m128 x = _mm_loadu_ps(v + i + 4 * q);
      const __m128i big = _mm_cvttps_epi32(_mm_min_ps(_mm_mul_ps(_mm_and_ps(x, abs_mask), rv), sv));
      const __m128i l = _mm_srli_epi32(big, 8), t = _mm_and_si128(big, low8);
      const __m128i up = _mm_cmpgt_epi32(t, r32[q]);  // -1 where r < t
      tie[q] = _mm_cmpeq_epi32(t, r32[q]);
      const __m128i lev = _mm_sub_epi32(l, up);
      const __m128i g =
          _mm_srli_epi32(_mm_and_si128(_mm_castps_si128(x), _mm_cmpgt_epi32(lev, zi)), 31);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i + 4 * q),
                       _mm_or_si128(_mm_slli_epi32(lev, 1), g));
    }
    const int tmask = _mm_movemask_epi8(
        _mm_packs_epi16(_mm_packs_epi32(tie[0], tie[1]), _mm_packs_epi32(tie[2], tie[3])));
    tacc |= static_cast<std::uint64_t>(static_cast<unsigned>(tmask)) << (i % 64);
    if (i % 64 == 48) {
      ties[i / 64] = tacc;
      tacc = 0;
    }
  }
  if (i % 64 != 0) ties[i / 64] |= tacc;
  for (; i < m; ++i) {
    const Rounding r = round_parts(v[i], r256, s256);
    if (rb[i] == r.t) ties[i / 64] |= std::uint64_t{1} << (i % 64);
    codes[i] = make_code(v[i], r.l + (rb[i] < r.t));
  }
}

// Resolves the ties of Note [QSGD rounding] in index order; kPacked: codes two per byte.
template <bool kPacked = false, class Code>
void fix_ties(const float* v, std::size_t m, const std::uint64_t* ties, float r256, float s256,
              BulkRng& tie_rng, Code* codes) {
  for (std::size_t wi = 0; wi < (m + 63) / 64; ++wi) {
    for (std::uint64_t bits = ties[wi]; bits != 0; bits &= bits - 1) {
      const std::size_t i = 64 * wi + static_cast<std::size_t>(std::countr_zero(bits));
      const Rounding r = round_parts(v[i], r256, s256);
      const bool up = static_cast<double>(tie_rng.next_u32()) < static_cast<double>(r.f) * 0x1p32;
      put_code<kPacked>(codes, i, make_code(v[i], r.l + up));
    }
  }
}

// Fixed fields of w <= 8 bits from code bytes, 16 at a time (Note [QSGD kernels]), packed into
// local words and handed to the writer in one put_bits per chunk.
void pack_fixed_bytes(const std::uint8_t* codes, std::size_t m, int w, BitWriter& out) {
  std::uint64_t words[kChunk * 8 / 64 + 1];
  WordPacker pk(words);
  const __m128i cw = _mm_cvtsi32_si128(w), c2w = _mm_cvtsi32_si128(2 * w);
  const __m128i c4w = _mm_cvtsi32_si128(4 * w);
  const __m128i m16 = _mm_set1_epi16(0x00FF), m32 = _mm_set1_epi32(0xFFFF);
  const __m128i m64 = _mm_set1_epi64x(0xFFFFFFFFll);
  std::size_t i = 0;
  if (w == 4) {  // two codes per byte: byte k = c_2k | c_2k+1 << 4
    for (; i + 16 <= m; i += 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i));
      const __m128i pairs = _mm_and_si128(_mm_or_si128(x, _mm_srli_epi16(x, 4)), m16);
      pk.put_aligned_word(
          static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_packus_epi16(pairs, pairs))));
    }
  }
  for (; i + 16 <= m; i += 16) {
    __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i));
    x = _mm_or_si128(_mm_and_si128(x, m16), _mm_sll_epi16(_mm_srli_epi16(x, 8), cw));
    x = _mm_or_si128(_mm_and_si128(x, m32), _mm_sll_epi32(_mm_srli_epi32(x, 16), c2w));
    x = _mm_or_si128(_mm_and_si128(x, m64), _mm_sll_epi64(_mm_srli_epi64(x, 32), c4w));
    const auto lo = static_cast<std::uint64_t>(_mm_cvtsi128_si64(x));
    const auto hi = static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(x, x)));
    if (w <= 4) {
      pk.put(lo | hi << (8 * w), 16 * w);
    } else {
      pk.put(lo, 8 * w);
      pk.put(hi, 8 * w);
    }
  }
  for (; i < m; ++i) pk.put(codes[i], w);
  pk.finish();
  out.put_bits(words, pk.bits());
}

inline void put_elias(std::uint32_t code, BitWriter& out) {
  const std::uint32_t level = code >> 1;
  if (level == 0) {
    out.put(1, 1);
    return;
  }
  const std::uint64_t x = level + 1;
  const int nb = std::bit_width(x) - 1;  // N
  const std::uint64_t low = x & ((std::uint64_t{1} << nb) - 1);
  out.put((std::uint64_t{1} << nb) | (low << (nb + 1)) |
              (static_cast<std::uint64_t>(code & 1) << (2 * nb + 1)),
          2 * nb + 2);
}

template <class Code>
void pack_elias(const Code* codes, std::size_t m, BitWriter& out) {
  constexpr std::size_t kStep = 16 / sizeof(Code) * 4;  // 64 bytes of codes
  std::size_t i = 0;
  for (; i + kStep <= m; i += kStep) {
    const auto* c = reinterpret_cast<const __m128i*>(codes + i);
    const __m128i any = _mm_or_si128(_mm_or_si128(_mm_loadu_si128(c), _mm_loadu_si128(c + 1)),
                                     _mm_or_si128(_mm_loadu_si128(c + 2), _mm_loadu_si128(c + 3)));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(any, _mm_setzero_si128())) == 0xFFFF) {
      out.put(~std::uint64_t{0}, static_cast<int>(kStep));  // kStep values of level 0
      continue;
    }
    for (std::size_t j = i; j < i + kStep; ++j) put_elias(codes[j], out);
  }
  for (; i < m; ++i) put_elias(codes[i], out);
}

inline float decode_value(std::uint32_t code, float q) {
  const float mag = static_cast<float>(code >> 1) * q;
  return (code & 1) ? -mag : mag;
}

// Splitting 16 fixed fields of w <= 8 bits into 16 code bytes (Note [QSGD kernels]).
struct FieldSplit {
  explicit FieldSplit(int width)
      : w(width),
        cw(_mm_cvtsi32_si128(width)),
        c2w(_mm_cvtsi32_si128(2 * width)),
        c4w(_mm_cvtsi32_si128(4 * width)),
        mw(_mm_set1_epi16(static_cast<short>((1 << width) - 1))),
        m2w(_mm_set1_epi32((1 << (2 * width)) - 1)),
        m4w(_mm_set1_epi64x(static_cast<long long>((std::uint64_t{1} << (4 * width)) - 1))),
        mask8w(width == 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * width)) - 1) {}
  int w;
  __m128i cw, c2w, c4w, mw, m2w, m4w;
  std::uint64_t mask8w;
};

// The next cnt <= 16 fields as 16 code bytes (bytes past cnt are 0).
inline __attribute__((always_inline)) __m128i next16(BitReader& in, const FieldSplit& k,
                                                     int cnt = 16) {
  if (k.w == 4) {  // byte j holds codes 2j and 2j + 1
    const __m128i x = _mm_cvtsi64_si128(static_cast<long long>(in.get(4 * cnt)));
    const __m128i low4 = _mm_set1_epi8(0x0F);
    return _mm_unpacklo_epi8(_mm_and_si128(x, low4), _mm_and_si128(_mm_srli_epi16(x, 4), low4));
  }
  std::uint64_t lo, hi;
  if (k.w <= 4) {
    const std::uint64_t g = in.get(cnt * k.w);
    lo = g & k.mask8w;
    hi = g >> (8 * k.w);
  } else {
    lo = in.get(std::min(cnt, 8) * k.w);
    hi = cnt > 8 ? in.get((cnt - 8) * k.w) : 0;
  }
  __m128i x = _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
  x = _mm_or_si128(_mm_and_si128(x, k.m4w), _mm_slli_epi64(_mm_srl_epi64(x, k.c4w), 32));
  x = _mm_or_si128(_mm_and_si128(x, k.m2w), _mm_slli_epi32(_mm_srl_epi32(x, k.c2w), 16));
  return _mm_or_si128(_mm_and_si128(x, k.mw), _mm_slli_epi16(_mm_srl_epi16(x, k.cw), 8));
}

// Decodes values one at a time until out + i is `align`-byte aligned (or m is reached).
std::size_t decode_until_aligned(BitReader& in, std::size_t m, int w, float q, float* out,
                                 std::size_t align) {
  std::size_t i = 0;
  while (i < m && reinterpret_cast<std::uintptr_t>(out + i) % align != 0)
    out[i++] = decode_value(static_cast<std::uint32_t>(in.get(w)), q);
  return i;
}

// Note [Streaming stores] in sign.cpp: large outputs bypass the cache. `stream` is decided for
// the whole layer (small buckets of a large layer stream too); the caller issues the sfence.
void unpack_fixed_sse2(BitReader& in, std::size_t m, int w, float q, float* out, bool stream) {
  const FieldSplit k(w);
  const __m128 qv = _mm_set1_ps(q);
  const __m128i zi = _mm_setzero_si128();
  std::size_t i = decode_until_aligned(in, m, w, q, out, 16);
  for (; i + 16 <= m; i += 16) {
    const __m128i x = next16(in, k);
    const __m128i b16l = _mm_unpacklo_epi8(x, zi), b16h = _mm_unpackhi_epi8(x, zi);
    const __m128i c[4] = {_mm_unpacklo_epi16(b16l, zi), _mm_unpackhi_epi16(b16l, zi),
                          _mm_unpacklo_epi16(b16h, zi), _mm_unpackhi_epi16(b16h, zi)};
    for (int j = 0; j < 4; ++j) {
      const __m128 mag = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srli_epi32(c[j], 1)), qv);
      const __m128 val = _mm_xor_ps(mag, _mm_castsi128_ps(_mm_slli_epi32(c[j], 31)));
      if (stream)
        _mm_stream_ps(out + i + 4 * j, val);
      else
        _mm_store_ps(out + i + 4 * j, val);
    }
  }
  for (; i < m; ++i) out[i] = decode_value(static_cast<std::uint32_t>(in.get(w)), q);
}

// The next cnt <= 16 values (lanes past cnt are 0).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline)) inline __m512
next16_values_avx512(BitReader& in, const FieldSplit& k, __m512 qv, int cnt) {
  const __m512i c = _mm512_cvtepu8_epi32(next16(in, k, cnt));
  const __m512 mag = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(c, 1)), qv);
  return _mm512_castsi512_ps(
      _mm512_xor_si512(_mm512_castps_si512(mag), _mm512_slli_epi32(c, 31)));
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prfchw"))) void unpack_fixed_avx512(
    BitReader& in, std::size_t m, int w, float q, float* out, bool stream) {
  const FieldSplit k(w);
  const __m512 qv = _mm512_set1_ps(q);
  // The values before the first 64-byte boundary and after the last one in masked stores: a
  // layer of small buckets (512) has both in every bucket unless the output is 64-byte aligned.
  // The line the tail shares with the next bucket's head is read for ownership by those masked
  // stores; fetched only then, the read holds up the streaming stores queued behind it.
  if (stream) _m_prefetchw(out + m - 1);
  std::size_t i = 0;
  if (const auto mis = reinterpret_cast<std::uintptr_t>(out) % 64; mis != 0) {  // a float * 4
    const int head = static_cast<int>(std::min<std::size_t>(m, (64 - mis) / 4));
    _mm512_mask_storeu_ps(out, static_cast<__mmask16>((1u << head) - 1u),
                          next16_values_avx512(in, k, qv, head));
    i = static_cast<std::size_t>(head);
  }
  for (; i + 16 <= m; i += 16) {
    const __m512 val = next16_values_avx512(in, k, qv, 16);
    if (stream)
      _mm512_stream_ps(out + i, val);
    else
      _mm512_store_ps(out + i, val);
  }
  if (i < m) {
    const int tail = static_cast<int>(m - i);
    _mm512_mask_storeu_ps(out + i, static_cast<__mmask16>((1u << tail) - 1u),
                          next16_values_avx512(in, k, qv, tail));
  }
}

// The AVX2 decoder: 16 codes per split, two registers of 8 values, 32-byte aligned stores after
// a scalar head (the SSE2 decoder's scheme at twice the width).
__attribute__((target("avx2"))) void unpack_fixed_avx2(BitReader& in, std::size_t m, int w,
                                                       float q, float* out, bool stream) {
  const FieldSplit k(w);
  const __m256 qv = _mm256_set1_ps(q);
  std::size_t i = decode_until_aligned(in, m, w, q, out, 32);
  for (; i + 16 <= m; i += 16) {
    const __m128i x = next16(in, k);
    const __m256i c[2] = {_mm256_cvtepu8_epi32(x), _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(x, x))};
    for (int j = 0; j < 2; ++j) {
      const __m256 mag = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(c[j], 1)), qv);
      const __m256 val = _mm256_xor_ps(mag, _mm256_castsi256_ps(_mm256_slli_epi32(c[j], 31)));
      if (stream)
        _mm256_stream_ps(out + i + 8 * j, val);
      else
        _mm256_store_ps(out + i + 8 * j, val);
    }
  }
  for (; i < m; ++i) out[i] = decode_value(static_cast<std::uint32_t>(in.get(w)), q);
}

void unpack_elias(BitReader& in, std::size_t m, float q, int s, float* out) {
  std::size_t i = 0;
  while (i < m) {
    const std::uint64_t p = in.peek64();
    if (p & 1) {  // a run of level-0 values
      const std::size_t run =
          std::min<std::size_t>(static_cast<std::size_t>(std::countr_one(p)), m - i);
      std::fill(out + i, out + i + run, 0.0f);
      in.skip(run);
      i += run;
      continue;
    }
    const int nb = std::countr_zero(p);
    if (nb > 30) throw std::runtime_error("wire format: bad Elias-gamma code in a qsgd message");
    const std::uint64_t x =
        (std::uint64_t{1} << nb) | ((p >> (nb + 1)) & ((std::uint64_t{1} << nb) - 1));
    const std::uint32_t g = static_cast<std::uint32_t>((p >> (2 * nb + 1)) & 1);
    in.skip(static_cast<std::uint64_t>(2 * nb + 2));
    if (x - 1 > static_cast<std::uint64_t>(s))
      throw std::runtime_error("wire format: qsgd level above s");
    out[i++] = decode_value(static_cast<std::uint32_t>(x - 1) << 1 | g, q);
  }
}

struct Scratch {  // sized for the larger chunks of the nibble path
  std::vector<std::uint32_t> words = std::vector<std::uint32_t>(kChunk);
  std::vector<std::uint8_t> bytes = std::vector<std::uint8_t>(kNibbleChunk);
  std::vector<std::uint32_t> rnd = std::vector<std::uint32_t>(4 * (kNibbleChunk / 16 + 2));
  std::vector<std::uint64_t> ties = std::vector<std::uint64_t>(kNibbleChunk / 64);
};

}  // namespace

void QsgdCompressor::encode_layer(std::span<const float> v, const LayerShape&,
                                  const MessageContext&, std::span<float>, Rng& private_rng,
                                  BitWriter& out) const {
  const std::uint64_t key = private_rng.next_u64();  // one draw per layer, even an empty one
  const std::size_t n = v.size();
  if (n == 0) return;
  const std::size_t bucket = bucket_ > 0 ? std::min<std::size_t>(bucket_, n) : n;
  const int w = 1 + index_bits(static_cast<std::uint64_t>(s_) + 1);
  const std::size_t buckets = (n + bucket - 1) / bucket;
  out.reserve(32 * buckets + (elias_ ? n : n * static_cast<std::size_t>(w)));
  thread_local Scratch sc;
  BulkRng tie_rng(key, 1, 0, Purpose::kCompression);
  const float s256 = static_cast<float>(256 * s_);
  const bool small = s_ <= 127;  // code bytes, w <= 8
  // w = 4 fixed fields straight from the AVX-512 quantiser, two per byte
  const QuantizeBytes nibble_kernel = quantize_nibbles_kernel();
  const bool nibbles = w == 4 && !elias_ && nibble_kernel != nullptr;
  for (std::size_t b0 = 0; b0 < n; b0 += bucket) {
    const std::size_t m = std::min(bucket, n - b0);
    const float nu = max_norm_ ? max_abs(v.data() + b0, m) : l2_norm(v.data() + b0, m);
    out.put_f32(nu);
    const float r256 = nu > 0.0f ? s256 / nu : 0.0f;
    const std::size_t chunk = nibbles ? kNibbleChunk : kChunk;
    for (std::size_t c = 0; c < m; c += chunk) {
      const std::size_t mc = std::min(chunk, m - c), j0 = b0 + c;
      const float* x = v.data() + j0;
      const auto first_block = static_cast<std::uint32_t>(j0 / 16);
      const std::size_t nblocks = (j0 + mc - 1) / 16 - j0 / 16 + 1;
      philox_blocks(key, 0, 0, Purpose::kCompression, first_block, nblocks, sc.rnd.data());
      const auto* rb = reinterpret_cast<const std::uint8_t*>(sc.rnd.data()) + j0 % 16;
      std::fill_n(sc.ties.begin(), (mc + 63) / 64, 0);
      if (nibbles) {
        nibble_kernel(x, mc, rb, r256, s256, sc.bytes.data(), sc.ties.data());
        fix_ties<true>(x, mc, sc.ties.data(), r256, s256, tie_rng, sc.bytes.data());
        out.put_bits(sc.bytes.data(), 4 * static_cast<std::uint64_t>(mc));
      } else if (small) {
        quantize_bytes_kernel()(x, mc, rb, r256, s256, sc.bytes.data(), sc.ties.data());
        fix_ties(x, mc, sc.ties.data(), r256, s256, tie_rng, sc.bytes.data());
        if (elias_)
          pack_elias(sc.bytes.data(), mc, out);
        else
          pack_fixed_bytes(sc.bytes.data(), mc, w, out);
      } else {
        quantize_words(x, mc, rb, r256, s256, sc.words.data(), sc.ties.data());
        fix_ties(x, mc, sc.ties.data(), r256, s256, tie_rng, sc.words.data());
        if (elias_) {
          pack_elias(sc.words.data(), mc, out);
        } else {
          for (std::size_t i = 0; i < mc; ++i) out.put(sc.words[i], w);
        }
      }
    }
  }
}

bool select_qsgd_kernel(const std::string& isa) {
  if (isa == "sse2") {
    selected_kernel() = quantize_bytes;
    return true;
  }
  if (isa == "avx512" && cpu_isa() == Isa::kAvx512) {
    selected_kernel() = quantize_bytes_avx512;
    return true;
  }
  if (isa == "avx2" && cpu_isa() >= Isa::kAvx2) {
    selected_kernel() = quantize_bytes_avx2;
    return true;
  }
  if (isa.empty()) {
    selected_kernel() = nullptr;
    return true;
  }
  return false;
}

void QsgdCompressor::decode_layer(BitReader& in, const LayerShape&, const MessageContext&,
                                  std::span<float> out) const {
  const std::size_t n = out.size();
  if (n == 0) return;
  const std::size_t bucket = bucket_ > 0 ? std::min<std::size_t>(bucket_, n) : n;
  const int w = 1 + index_bits(static_cast<std::uint64_t>(s_) + 1);
  const auto s_f = static_cast<float>(s_);
  const bool stream = n >= kStreamMin;
  for (std::size_t b0 = 0; b0 < n; b0 += bucket) {
    const std::size_t m = std::min(bucket, n - b0);
    const float q = in.get_f32() / s_f;
    float* o = out.data() + b0;
    if (elias_) {
      unpack_elias(in, m, q, s_, o);
    } else if (w <= 8) {
      if (quantize_bytes_kernel() == quantize_bytes_avx512)
        unpack_fixed_avx512(in, m, w, q, o, stream);
      else if (quantize_bytes_kernel() == quantize_bytes_avx2)
        unpack_fixed_avx2(in, m, w, q, o, stream);
      else
        unpack_fixed_sse2(in, m, w, q, o, stream);
    } else {
      for (std::size_t i = 0; i < m; ++i) {
        const auto code = static_cast<std::uint32_t>(in.get(w));
        if ((code >> 1) > static_cast<std::uint32_t>(s_))
          throw std::runtime_error("wire format: qsgd level above s");
        o[i] = decode_value(code, q);
      }
    }
  }
  if (stream) _mm_sfence();
}

CompressorRegistration qsgd_registration() {
  using O = CompressorOptions;
  return {"qsgd",
          "stochastic quantisation to s levels of |v|/norm per bucket (unbiased)",
          {field(opt_int("levels", 4, "quantisation levels s", 1, QsgdCompressor::kMaxLevels),
                 &O::levels),
           field(opt_enum("norm", "l2", {"l2", "max"}, "bucket norm"), &O::norm),
           field(opt_int("bucket", 0, "bucket size; 0: the whole layer"), &O::bucket),
           field(opt_enum("coding", "fixed", {"fixed", "elias"},
                          "fixed: sign + ceil(log2(s+1)) bits; elias: Elias-gamma coded levels"),
                 &O::coding)},
          [](const O& o) -> std::unique_ptr<Compressor> {
            require_usage(o.levels >= 1, fmt::format("{}.levels = {} is not allowed: expected >= 1",
                                                     o.section, o.levels));
            require_usage(o.levels <= QsgdCompressor::kMaxLevels,
                          fmt::format("{}.levels = {} is not allowed: expected <= {}", o.section,
                                      o.levels, QsgdCompressor::kMaxLevels));
            require_one_of(o, "norm", o.norm, {"l2", "max"});
            require_usage(o.bucket >= 0, fmt::format("{}.bucket = {} is not allowed: expected >= 0 "
                                                     "(0: the whole layer)",
                                                     o.section, o.bucket));
            require_one_of(o, "coding", o.coding, {"fixed", "elias"});
            return std::make_unique<QsgdCompressor>(o.levels, o.norm == "max", o.bucket,
                                                    o.coding == "elias");
          }};
}

}  // namespace cohort::compress
