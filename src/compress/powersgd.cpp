// PowerSGD: the power step's maths and the per-client compressor (docs/algorithms.md §2).
//
// Note [PowerSGD passes]
// The step reads an m x n layer M (rows x cols here) and the small factors Q (n x r) and P
// (m x r), r <= 8 in practice. Its products are skinny: 2 r flops per 4-byte element of M, far
// fewer than one core computes in the time memory delivers that element, so their cost is the
// number of times M (and, with error feedback, the memory e) crosses the memory bus. Three passes
// over M are the fewest: P̂ needs all of P (Gram-Schmidt normalises whole columns) before
// Q = Mᵀ P̂ can start, and P̂ Qᵀ needs all of Q. They are:
//  1. P = M Q, row by row: row i of P is r dot products of row i of M with the columns of Q
//     (kept as Qᵀ, r rows of n floats, so that both operands are contiguous).
//  2. Qᵀ = (Mᵀ P̂)ᵀ: for each row i of M, Qᵀ[k] += P̂[i][k] M[i] for every k. Qᵀ (r n floats,
//     144 KB at n = 4608, r = 8) stays in the L2 cache while M streams past once.
//  3. decoded = P̂ Qᵀ, row by row.
// Error feedback (p = u + e, e <- p - decoded) is fused into them: pass 1 forms M = u + e as it
// reads u and e, writes M over e (a line it has just read, so no read for ownership) and records
// max |M| for the exchange's finiteness check; pass 2 reads M from e; pass 3 reads M from e and
// writes e <- M - decoded over it, beside decoded. Memory traffic per element of M, in floats:
// 3 + 1 + 3 = 7 (decoded goes around the cache with streaming stores on layers of 2^22 values
// and more; below that its write also reads the line first: 8), against 12 when the exchange
// forms p, checks it, encodes (two products), decodes into a new buffer and updates e one step
// after another, and about 14 for the same steps in torch's hook (which also copies M to keep
// it). Recomputing u + e in passes 2 and 3 instead of storing it would cost 8. M = u + e is one
// float addition whichever way, so the fused step gives the bits of the unfused one.
//
// Each pass reads several rows of M at once (a few sequential streams, which the prefetcher
// serves faster than one) and reuses every vector of Q or Qᵀ it loads for all of those rows.
// Passes 2 and 3 compute every element on its own, so their 16-value chunks may start anywhere
// in a row; pass 3 starts them at the output's first 64-byte boundary when it streams.
//
// Note [PowerSGD lanes]
// Results must not depend on the ISA path (Note [One ISA decision]), on buffer addresses
// (Note [Address-independent results] in model/dense.h) or on anything but the values. So the
// order of every sum is fixed by indices alone, and every term is added by a fused multiply-add
// (a b + c rounded once):
//  - P[i][k] = sum_j M[i][j] Q[j][k]: 16 float lanes from +0, lane l adds the terms for
//    j = l mod 16 in increasing j (the last cols mod 16 terms go to lanes 0, 1, ... in order);
//    the 16 lanes are then added in double, in lane order, and rounded once to float.
//  - Qᵀ[k][j] = sum_i M[i][j] P̂[i][k]: a float sum from +0 in increasing i.
//  - decoded[i][j] = sum_k P̂[i][k] Q[j][k]: the k = 0 product, then the other terms in
//    increasing k.
// The three paths share one template on a 16-lane type built from GCC vectors of 16 (AVX-512),
// 8 (AVX2) or 4 (SSE2, the generic path) floats, so they perform the same operations in the same
// order. A fused multiply-add is one instruction on the AVX paths and std::fma on the generic
// one (a call into the C library per value: slow, but exact; that path only serves CPUs without
// AVX2 and FMA, and tests). The kernels are compiled with fp-contract off, so the compiler fuses
// nothing else. The order is the same for any blocking of rows or of Q's columns, so the paths
// may block differently. Fused multiply-adds halve the arithmetic, which matters at r = 8, where
// separate multiplies and adds made the passes slower than memory.
#include "compress/powersgd.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/isa.h"

#if defined(__GNUC__) && !defined(__clang__)
// The 16-lane helpers pass 64-byte vectors by value; they are always inlined into the kernels, so
// the ABI change GCC warns about never applies.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 reports false "may be used uninitialized" for vector parts filled by memcpy (as for its
// own intrinsics, GCC PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace cohort::compress::powersgd {
namespace {

// ---- 16 float lanes on every path (Note [PowerSGD lanes]) -----------------------------------

constexpr int kLanes = 16;

template <int W>
struct Native;
template <>
struct Native<16> {
  typedef float F __attribute__((vector_size(64)));
  typedef std::int32_t I __attribute__((vector_size(64)));
};
template <>
struct Native<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef std::int32_t I __attribute__((vector_size(32)));
};
template <>
struct Native<4> {
  typedef float F __attribute__((vector_size(16)));
  typedef std::int32_t I __attribute__((vector_size(16)));
};

// 16 floats as 16 / W native vectors of W floats.
template <int W>
struct Lanes {
  static constexpr int kParts = kLanes / W;
  using F = typename Native<W>::F;
  using I = typename Native<W>::I;
  F part[kParts];
};

#define COHORT_LANES_INLINE [[gnu::always_inline]] inline

// Runs STMT for every part with the constant index I. Constant indices keep the parts in
// registers: a part indexed by a loop variable (even an unrolled one) is an array access, which
// makes GCC keep the whole value in memory when an asm statement takes it as an operand.
#define COHORT_FOR_PARTS(W, STMT)                                                  \
  do {                                                                             \
    {                                                                              \
      constexpr int I = 0;                                                         \
      STMT;                                                                        \
    }                                                                              \
    if constexpr (Lanes<W>::kParts > 1) {                                          \
      constexpr int I = 1;                                                         \
      STMT;                                                                        \
    }                                                                              \
    if constexpr (Lanes<W>::kParts > 2) {                                          \
      constexpr int I = 2;                                                         \
      STMT;                                                                        \
    }                                                                              \
    if constexpr (Lanes<W>::kParts > 3) {                                          \
      constexpr int I = 3;                                                         \
      STMT;                                                                        \
    }                                                                              \
  } while (false)

template <int W>
COHORT_LANES_INLINE Lanes<W> zero_lanes() {
  Lanes<W> r;
  COHORT_FOR_PARTS(W, r.part[I] = typename Lanes<W>::F{});
  return r;
}

template <int W>
COHORT_LANES_INLINE Lanes<W> load(const float* p) {
  Lanes<W> r;
  COHORT_FOR_PARTS(W, std::memcpy(&r.part[I], p + I * W, sizeof r.part[I]));
  return r;
}

template <int W>
COHORT_LANES_INLINE void store(float* p, const Lanes<W>& a) {
  COHORT_FOR_PARTS(W, std::memcpy(p + I * W, &a.part[I], sizeof a.part[I]));
}

template <int W>
COHORT_LANES_INLINE Lanes<W> operator+(const Lanes<W>& a, const Lanes<W>& b) {
  Lanes<W> r;
  COHORT_FOR_PARTS(W, r.part[I] = a.part[I] + b.part[I]);
  return r;
}

template <int W>
COHORT_LANES_INLINE Lanes<W> operator-(const Lanes<W>& a, const Lanes<W>& b) {
  Lanes<W> r;
  COHORT_FOR_PARTS(W, r.part[I] = a.part[I] - b.part[I]);
  return r;
}

template <int W>
COHORT_LANES_INLINE Lanes<W> operator*(const Lanes<W>& a, float s) {
  Lanes<W> r;
  COHORT_FOR_PARTS(W, r.part[I] = a.part[I] * s);
  return r;
}

// x y + z rounded once, lane by lane: one fused multiply-add instruction per native vector on
// the AVX paths, std::fma (the C library's, exact) on the generic one, the same bits either way.
// The instruction is written out because the intrinsics cannot be called from this shared
// template (GCC inlines them only into functions compiled for their ISA), and neither GCC's
// contraction of x * y + z (absent at -O0) nor its vectorisation of std::fma loops is certain.
template <int W>
COHORT_LANES_INLINE typename Lanes<W>::F fma_part(const typename Lanes<W>::F& x,
                                                  const typename Lanes<W>::F& y,
                                                  const typename Lanes<W>::F& z) {
  typename Lanes<W>::F acc = z;
  if constexpr (W == 16) {
    asm("vfmadd231ps {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(x), "v"(y));
  } else if constexpr (W == 8) {
    asm("vfmadd231ps {%2, %1, %0|%0, %1, %2}" : "+x"(acc) : "x"(x), "x"(y));
  } else {
    for (int l = 0; l < W; ++l) acc[l] = std::fma(x[l], y[l], acc[l]);
  }
  return acc;
}

template <int W>
COHORT_LANES_INLINE Lanes<W> fma(const Lanes<W>& a, const Lanes<W>& b, const Lanes<W>& c) {
  Lanes<W> r;
  COHORT_FOR_PARTS(W, r.part[I] = fma_part<W>(a.part[I], b.part[I], c.part[I]));
  return r;
}

// a *s + c, the same way (on AVX-512 *s is broadcast from memory by the instruction itself).
template <int W>
COHORT_LANES_INLINE Lanes<W> fma(const Lanes<W>& a, const float* s, const Lanes<W>& c) {
  Lanes<W> r;
  if constexpr (W == 16) {
    r.part[0] = c.part[0];
    asm("vfmadd231ps {%2%{1to16%}, %1, %0|%0, %1, %2%{1to16%}}"
        : "+v"(r.part[0])
        : "v"(a.part[0]), "m"(*s));
  } else {
    const typename Lanes<W>::F b = typename Lanes<W>::F{} + *s;
    COHORT_FOR_PARTS(W, r.part[I] = fma_part<W>(a.part[I], b, c.part[I]));
  }
  return r;
}

// The largest |x| seen, or NaN once a NaN was seen. Kept as the bits of |x| (the sign bit
// cleared) in int32 lanes: for those, integer order is float order, and every NaN lies above
// +inf, so one integer maximum per vector tracks both.
constexpr std::int32_t kAbsMask = 0x7FFFFFFF;
constexpr std::int32_t kInfBits = 0x7F800000;

template <int W>
struct Extent {
  typename Lanes<W>::I lanes[Lanes<W>::kParts] = {};
  std::int32_t tail = 0;

  COHORT_LANES_INLINE void see(const Lanes<W>& x) {
    COHORT_FOR_PARTS(W, {
      const auto a = reinterpret_cast<typename Lanes<W>::I>(x.part[I]) & kAbsMask;
      lanes[I] = a > lanes[I] ? a : lanes[I];
    });
  }
  COHORT_LANES_INLINE void see(float x) {
    tail = std::max(tail, static_cast<std::int32_t>(std::bit_cast<std::int32_t>(x) & kAbsMask));
  }
};

float max_magnitude(float a, float b) {
  if (a != a || b != b) return std::numeric_limits<float>::quiet_NaN();
  return std::max(a, b);
}

template <int W>
float extent_value(const Extent<W>& x) {
  std::int32_t v[kLanes];
  std::memcpy(v, x.lanes, sizeof v);
  std::int32_t m = x.tail;
  for (const std::int32_t a : v) m = std::max(m, a);
  return m > kInfBits ? std::numeric_limits<float>::quiet_NaN() : std::bit_cast<float>(m);
}

// P[i][k] from 16 lanes (Note [PowerSGD lanes]).
float lane_total(const float* lanes) {
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += static_cast<double>(lanes[l]);
  return static_cast<float>(s);
}

// ---- Pass 1: P = M Q, M = u (+ e) ------------------------------------------------------------

// Rows i0 .. i0 + NR - 1 of P, columns k0 .. k0 + G - 1. qt is Qᵀ (r x cols). With kE, M = u + e
// is formed here, stored over e and its extent recorded.
template <int W, int NR, int G, bool kE>
COHORT_LANES_INLINE void p_block(const float* u, float* e, const float* qt, std::int64_t cols,
                                 int r, std::int64_t i0, int k0, float* p, Extent<W>& extent) {
  Lanes<W> acc[NR][G];
#pragma GCC unroll 8
  for (int b = 0; b < NR; ++b)
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) acc[b][g] = zero_lanes<W>();
  const std::int64_t full = cols - cols % kLanes;
  const float* ub = u + i0 * cols;
  float* eb = kE ? e + i0 * cols : nullptr;
  const float* qb = qt + static_cast<std::int64_t>(k0) * cols;
  for (std::int64_t j = 0; j < full; j += kLanes) {
    Lanes<W> m[NR];
#pragma GCC unroll 8
    for (int b = 0; b < NR; ++b) {
      m[b] = load<W>(ub + b * cols + j);
      if constexpr (kE) {
        m[b] = m[b] + load<W>(eb + b * cols + j);
        store<W>(eb + b * cols + j, m[b]);
        extent.see(m[b]);
      }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const Lanes<W> q = load<W>(qb + g * cols + j);
#pragma GCC unroll 8
      for (int b = 0; b < NR; ++b) acc[b][g] = fma(m[b], q, acc[b][g]);
    }
  }
  alignas(64) float lanes[kLanes];
  for (int b = 0; b < NR; ++b) {
    if constexpr (kE)
      for (std::int64_t j = full; j < cols; ++j) {
        const float m = ub[b * cols + j] + eb[b * cols + j];
        eb[b * cols + j] = m;
        extent.see(m);
      }
    const float* mb = kE ? eb + b * cols : ub + b * cols;  // the tail of M's row
    for (int g = 0; g < G; ++g) {
      store<W>(lanes, acc[b][g]);
      for (std::int64_t j = full; j < cols; ++j)
        lanes[j - full] = std::fma(mb[j], qb[g * cols + j], lanes[j - full]);
      p[(i0 + b) * r + k0 + g] = lane_total(lanes);
    }
  }
}

template <int W, int NR, int G, bool kE>
COHORT_LANES_INLINE void p_rows(const float* u, float* e, const float* qt, std::int64_t rows,
                                std::int64_t cols, int r, int k0, float* p, Extent<W>& extent) {
  std::int64_t i = 0;
  for (; i + NR <= rows; i += NR) p_block<W, NR, G, kE>(u, e, qt, cols, r, i, k0, p, extent);
  for (; i < rows; ++i) p_block<W, 1, G, kE>(u, e, qt, cols, r, i, k0, p, extent);
}

// Columns k0 .. k0 + g - 1 of P, g <= G.
template <int W, int NR, int G, bool kE>
COHORT_LANES_INLINE void p_group(int g, const float* u, float* e, const float* qt,
                                 std::int64_t rows, std::int64_t cols, int r, int k0, float* p,
                                 Extent<W>& extent) {
  if (g == G)
    p_rows<W, NR, G, kE>(u, e, qt, rows, cols, r, k0, p, extent);
  else if constexpr (G > 1)
    p_group<W, NR, G - 1, kE>(g, u, e, qt, rows, cols, r, k0, p, extent);
}

// The whole pass, Q's columns in groups of G (one group's accumulators stay in registers). With
// e, M = u + e goes over e during the first group (later groups read it there) and the pass
// returns max |M| (NaN when M has a NaN); without, M = u and it returns 0.
template <int W, int NR, int G>
COHORT_LANES_INLINE float p_pass(const float* u, float* e, const float* qt, std::int64_t rows,
                                 std::int64_t cols, int r, float* p) {
  Extent<W> extent;
  for (int k0 = 0; k0 < r; k0 += G) {
    const int g = std::min(G, r - k0);
    if (e != nullptr && k0 == 0)
      p_group<W, NR, G, true>(g, u, e, qt, rows, cols, r, k0, p, extent);
    else
      p_group<W, NR, G, false>(g, e != nullptr ? e : u, nullptr, qt, rows, cols, r, k0, p, extent);
  }
  return e != nullptr ? extent_value(extent) : 0.0f;
}

// ---- Pass 2: Qᵀ = (Mᵀ P̂)ᵀ ---------------------------------------------------------------------

template <int W, int NR>
COHORT_LANES_INLINE void q_block(const float* m_rows, const float* p_hat, std::int64_t cols, int r,
                                 std::int64_t i0, float* qt) {
  const std::int64_t full = cols - cols % kLanes;
  const float* mb = m_rows + i0 * cols;
  const float* pb = p_hat + i0 * r;
  for (std::int64_t j = 0; j < full; j += kLanes) {
    Lanes<W> m[NR];
#pragma GCC unroll 8
    for (int b = 0; b < NR; ++b) m[b] = load<W>(mb + b * cols + j);
    for (int k = 0; k < r; ++k) {
      float* at = qt + k * cols + j;
      Lanes<W> a = load<W>(at);
#pragma GCC unroll 8
      for (int b = 0; b < NR; ++b) a = fma(m[b], pb + b * r + k, a);
      store<W>(at, a);
    }
  }
  for (std::int64_t j = full; j < cols; ++j) {
    for (int k = 0; k < r; ++k) {
      float a = qt[k * cols + j];
      for (int b = 0; b < NR; ++b) a = std::fma(mb[b * cols + j], pb[b * r + k], a);
      qt[k * cols + j] = a;
    }
  }
}

template <int W, int NR>
COHORT_LANES_INLINE void q_pass(const float* m, const float* p_hat, std::int64_t rows,
                                std::int64_t cols, int r, float* qt) {
  std::fill_n(qt, static_cast<std::int64_t>(r) * cols, 0.0f);
  std::int64_t i = 0;
  for (; i + NR <= rows; i += NR) q_block<W, NR>(m, p_hat, cols, r, i, qt);
  for (; i < rows; ++i) q_block<W, 1>(m, p_hat, cols, r, i, qt);
}

// ---- Pass 3: decoded = P̂ Qᵀ (and m <- m - decoded) --------------------------------------------

// Stores 16 floats at p (64-byte aligned) around the cache.
template <int W>
COHORT_LANES_INLINE void stream(float* p, const Lanes<W>& a) {
  if constexpr (W == 16)
    asm("vmovntps {%1, %0|%0, %1}" : "=m"(*reinterpret_cast<float(*)[16]>(p)) : "v"(a.part[0]));
  else if constexpr (W == 8)
    COHORT_FOR_PARTS(W, asm("vmovntps {%1, %0|%0, %1}"
                            : "=m"(*reinterpret_cast<float(*)[8]>(p + I * W))
                            : "x"(a.part[I])));
  else
    COHORT_FOR_PARTS(W, asm("movntps {%1, %0|%0, %1}"
                            : "=m"(*reinterpret_cast<float(*)[4]>(p + I * W))
                            : "x"(a.part[I])));
}

// With kE, m holds M (pass 1 put it there) and becomes the new error memory M - decoded. Each
// element is its own sum, so the 16-value chunks may start anywhere: they start `lead` values
// into the row, and with kStream (every row's chunks then start 64-byte aligned in out) decoded
// is written with streaming stores (Note [Streaming stores] in sign.cpp).
template <int W, int NR, bool kE, bool kStream>
COHORT_LANES_INLINE void out_block(const float* p_hat, const float* qt, std::int64_t cols, int r,
                                   std::int64_t i0, std::int64_t lead, float* out, float* m) {
  const float* pb = p_hat + i0 * r;
  float* ob = out + i0 * cols;
  float* mb = kE ? m + i0 * cols : nullptr;
  auto scalar = [&](std::int64_t j) [[gnu::always_inline]] {
    for (int b = 0; b < NR; ++b) {
      float d = qt[j] * pb[b * r];
      for (int k = 1; k < r; ++k) d = std::fma(qt[k * cols + j], pb[b * r + k], d);
      ob[b * cols + j] = d;
      if constexpr (kE) mb[b * cols + j] = mb[b * cols + j] - d;
    }
  };
  for (std::int64_t j = 0; j < lead && j < cols; ++j) scalar(j);
  std::int64_t j = lead;
  for (; j + kLanes <= cols; j += kLanes) {
    Lanes<W> d[NR];
    {
      const Lanes<W> q = load<W>(qt + j);
#pragma GCC unroll 8
      for (int b = 0; b < NR; ++b) d[b] = q * pb[b * r];
    }
    for (int k = 1; k < r; ++k) {
      const Lanes<W> q = load<W>(qt + k * cols + j);
#pragma GCC unroll 8
      for (int b = 0; b < NR; ++b) d[b] = fma(q, pb + b * r + k, d[b]);
    }
#pragma GCC unroll 8
    for (int b = 0; b < NR; ++b) {
      if constexpr (kStream)
        stream<W>(ob + b * cols + j, d[b]);
      else
        store<W>(ob + b * cols + j, d[b]);
      if constexpr (kE) store<W>(mb + b * cols + j, load<W>(mb + b * cols + j) - d[b]);
    }
  }
  for (; j < cols; ++j) scalar(j);
}

template <int W, int NR, bool kE, bool kStream>
COHORT_LANES_INLINE void out_rows(const float* p_hat, const float* qt, std::int64_t rows,
                                  std::int64_t cols, int r, std::int64_t lead, float* out,
                                  float* m) {
  std::int64_t i = 0;
  for (; i + NR <= rows; i += NR)
    out_block<W, NR, kE, kStream>(p_hat, qt, cols, r, i, lead, out, m);
  for (; i < rows; ++i) out_block<W, 1, kE, kStream>(p_hat, qt, cols, r, i, lead, out, m);
}

// Streaming stores for outputs of at least this many floats (16 MB). With u, e and decoded three
// times that, smaller layers stay in a last-level cache of a few tens of MB between the passes,
// where ordinary stores were as fast or faster (sign's decoder streams from 4 MB: it has no
// such reuse).
constexpr std::int64_t kStreamMin = std::int64_t{1} << 22;

template <int W, int NR>
COHORT_LANES_INLINE void out_pass(const float* p_hat, const float* qt, std::int64_t rows,
                                  std::int64_t cols, int r, float* out, float* m) {
  const auto at = reinterpret_cast<std::uintptr_t>(out);
  if (rows * cols >= kStreamMin && cols % kLanes == 0 && at % sizeof(float) == 0) {
    const auto lead = static_cast<std::int64_t>((kLanes - at / sizeof(float) % kLanes) % kLanes);
    if (m == nullptr)
      out_rows<W, NR, false, true>(p_hat, qt, rows, cols, r, lead, out, m);
    else
      out_rows<W, NR, true, true>(p_hat, qt, rows, cols, r, lead, out, m);
    asm volatile("sfence" ::: "memory");
    return;
  }
  if (m == nullptr)
    out_rows<W, NR, false, false>(p_hat, qt, rows, cols, r, 0, out, m);
  else
    out_rows<W, NR, true, false>(p_hat, qt, rows, cols, r, 0, out, m);
}

// ---- The paths (Note [One ISA decision]) -------------------------------------------------------
// Row blocks and Q column groups per path: as many accumulators as the registers hold (32 zmm,
// 16 ymm, 16 xmm; one 16-lane value is 1, 2 or 4 of them).

#define COHORT_PSGD_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), optimize("fp-contract=off")))
#define COHORT_PSGD_AVX2 __attribute__((target("avx2,fma"), optimize("fp-contract=off")))
#define COHORT_PSGD_GENERIC __attribute__((optimize("fp-contract=off")))

COHORT_PSGD_AVX512 float p_avx512(const float* u, float* e, const float* qt, std::int64_t rows,
                                  std::int64_t cols, int r, float* p) {
  if (r > 4) return p_pass<16, 3, 8>(u, e, qt, rows, cols, r, p);
  return p_pass<16, 4, 4>(u, e, qt, rows, cols, r, p);
}
COHORT_PSGD_AVX2 float p_avx2(const float* u, float* e, const float* qt, std::int64_t rows,
                              std::int64_t cols, int r, float* p) {
  return p_pass<8, 1, 4>(u, e, qt, rows, cols, r, p);
}
COHORT_PSGD_GENERIC float p_generic(const float* u, float* e, const float* qt, std::int64_t rows,
                                    std::int64_t cols, int r, float* p) {
  return p_pass<4, 1, 2>(u, e, qt, rows, cols, r, p);
}

COHORT_PSGD_AVX512 void q_avx512(const float* m, const float* p_hat, std::int64_t rows,
                                 std::int64_t cols, int r, float* qt) {
  q_pass<16, 8>(m, p_hat, rows, cols, r, qt);
}
COHORT_PSGD_AVX2 void q_avx2(const float* m, const float* p_hat, std::int64_t rows,
                             std::int64_t cols, int r, float* qt) {
  q_pass<8, 4>(m, p_hat, rows, cols, r, qt);
}
COHORT_PSGD_GENERIC void q_generic(const float* m, const float* p_hat, std::int64_t rows,
                                   std::int64_t cols, int r, float* qt) {
  q_pass<4, 2>(m, p_hat, rows, cols, r, qt);
}

COHORT_PSGD_AVX512 void out_avx512(const float* p_hat, const float* qt, std::int64_t rows,
                                   std::int64_t cols, int r, float* out, float* m) {
  out_pass<16, 4>(p_hat, qt, rows, cols, r, out, m);
}
COHORT_PSGD_AVX2 void out_avx2(const float* p_hat, const float* qt, std::int64_t rows,
                               std::int64_t cols, int r, float* out, float* m) {
  out_pass<8, 4>(p_hat, qt, rows, cols, r, out, m);
}
COHORT_PSGD_GENERIC void out_generic(const float* p_hat, const float* qt, std::int64_t rows,
                                     std::int64_t cols, int r, float* out, float* m) {
  out_pass<4, 2>(p_hat, qt, rows, cols, r, out, m);
}

// Pass 1 on M = u, or on M = u + e (stored over e; returns max |M|).
float pass_p(const float* u, float* e, const float* qt, std::int64_t rows, std::int64_t cols, int r,
             float* p) {
  switch (active_isa()) {
    case Isa::kAvx512:
      return p_avx512(u, e, qt, rows, cols, r, p);
    case Isa::kAvx2:
      return p_avx2(u, e, qt, rows, cols, r, p);
    default:
      return p_generic(u, e, qt, rows, cols, r, p);
  }
}

void pass_q(const float* m, const float* p_hat, std::int64_t rows, std::int64_t cols, int r,
            float* qt) {
  switch (active_isa()) {
    case Isa::kAvx512:
      return q_avx512(m, p_hat, rows, cols, r, qt);
    case Isa::kAvx2:
      return q_avx2(m, p_hat, rows, cols, r, qt);
    default:
      return q_generic(m, p_hat, rows, cols, r, qt);
  }
}

// Pass 3; with m (holding M), also m <- M - decoded.
void pass_out(const float* p_hat, const float* qt, std::int64_t rows, std::int64_t cols, int r,
              float* out, float* m) {
  switch (active_isa()) {
    case Isa::kAvx512:
      return out_avx512(p_hat, qt, rows, cols, r, out, m);
    case Isa::kAvx2:
      return out_avx2(p_hat, qt, rows, cols, r, out, m);
    default:
      return out_generic(p_hat, qt, rows, cols, r, out, m);
  }
}

// q (n x r, row-major) <-> qt (r x n).
void transpose(const float* a, std::int64_t rows, std::int64_t cols, float* out) {
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) out[j * rows + i] = a[i * cols + j];
}

std::vector<float> transposed(const float* a, std::int64_t rows, std::int64_t cols) {
  std::vector<float> t(static_cast<std::size_t>(rows * cols));
  transpose(a, rows, cols, t.data());
  return t;
}

// Float32 values on the wire: the same bits as put_f32 / get_f32 one value at a time (x86 is
// little-endian), a word at a time.
void put_floats(BitWriter& out, const std::vector<float>& v) {
  out.put_bits(v.data(), 32 * static_cast<std::uint64_t>(v.size()));
}

void get_floats(BitReader& in, std::vector<float>& v) {
  in.get_bits(v.data(), 32 * static_cast<std::uint64_t>(v.size()));
}

void check_rank(int r, const char* who) {
  if (r < 1)
    throw std::invalid_argument(std::string("powersgd ") + who + ": rank must be at least 1, got " +
                                std::to_string(r));
}

void check_size(std::size_t n, const LayerShape& layer, const char* what) {
  if (static_cast<std::int64_t>(n) != layer.size())
    throw std::invalid_argument("powersgd: layer has " + std::to_string(layer.size()) +
                                " values, the " + what + " " + std::to_string(n));
}

}  // namespace

const char* kernel_isa() { return isa_name(active_isa()); }

bool compressible(std::int64_t rows, std::int64_t cols) { return rows >= 2 && cols >= 2; }

int effective_rank(std::int64_t rows, std::int64_t cols, int rank) {
  return static_cast<int>(std::min<std::int64_t>({rows, cols, static_cast<std::int64_t>(rank)}));
}

void initial_q(const MessageContext& ctx, const LayerShape& layer, int r, float* q) {
  Rng rng = ctx.shared_rng(layer.index);
  const std::int64_t n = layer.cols * r;
  for (std::int64_t i = 0; i < n; ++i) q[i] = static_cast<float>(rng.normal());
}

void multiply_p(const float* m, const float* q, std::int64_t rows, std::int64_t cols, int r,
                float* p) {
  if (rows == 0 || r <= 0) return;
  const std::vector<float> qt = transposed(q, cols, r);
  pass_p(m, nullptr, qt.data(), rows, cols, r, p);
}

void orthonormalize(float* p, std::int64_t rows, int r) {
  for (int j = 0; j < r; ++j) {
    double sq = 0.0;
    for (std::int64_t i = 0; i < rows; ++i) {
      const double x = p[i * r + j];
      sq += x * x;
    }
    const double denom = std::sqrt(sq) + 1e-8;
    for (std::int64_t i = 0; i < rows; ++i)
      p[i * r + j] = static_cast<float>(static_cast<double>(p[i * r + j]) / denom);
    for (int k = j + 1; k < r; ++k) {
      double dot = 0.0;
      for (std::int64_t i = 0; i < rows; ++i)
        dot += static_cast<double>(p[i * r + j]) * static_cast<double>(p[i * r + k]);
      for (std::int64_t i = 0; i < rows; ++i)
        p[i * r + k] = static_cast<float>(static_cast<double>(p[i * r + k]) -
                                          dot * static_cast<double>(p[i * r + j]));
    }
  }
}

void multiply_q(const float* m, const float* p_hat, std::int64_t rows, std::int64_t cols, int r,
                float* q) {
  if (cols == 0 || r <= 0) return;
  std::vector<float> qt(static_cast<std::size_t>(r * cols));
  pass_q(m, p_hat, rows, cols, r, qt.data());
  transpose(qt.data(), r, cols, q);
}

void reconstruct(const float* p_hat, const float* q, std::int64_t rows, std::int64_t cols, int r,
                 float* out) {
  if (rows == 0 || cols == 0) return;
  if (r <= 0) {
    std::fill_n(out, rows * cols, 0.0f);
    return;
  }
  const std::vector<float> qt = transposed(q, cols, r);
  pass_out(p_hat, qt.data(), rows, cols, r, out, nullptr);
}

float power_step_with_feedback(const float* u, float* e, std::int64_t rows, std::int64_t cols,
                               int r, float* q, float* p_hat, float* decoded) {
  check_rank(r, "power step");
  if (rows < 1 || cols < 1)
    throw std::invalid_argument("powersgd power step: the layer must have rows and columns");
  std::vector<float> qt = transposed(q, cols, r);
  const float extent = pass_p(u, e, qt.data(), rows, cols, r, p_hat);  // e <- M = u + e
  orthonormalize(p_hat, rows, r);
  pass_q(e, p_hat, rows, cols, r, qt.data());
  transpose(qt.data(), r, cols, q);
  pass_out(p_hat, qt.data(), rows, cols, r, decoded, e);  // e <- M - decoded
  return extent;
}

void PowerSgdCompressor::encode_layer(std::span<const float> v, const LayerShape& layer,
                                      const MessageContext& ctx, std::span<float> state,
                                      Rng& /*private_rng*/, BitWriter& out) const {
  const std::int64_t rows = layer.rows, cols = layer.cols;
  check_size(v.size(), layer, "message slice");
  if (!compressible(rows, cols)) {
    for (const float x : v) out.put_f32(x);
    return;
  }
  check_rank(rank_, "encode");
  const int r = effective_rank(rows, cols, rank_);
  const bool keep = keeps_state(layer, state);
  const std::int64_t qn = cols * r;
  std::vector<float> q(static_cast<std::size_t>(qn)), p(static_cast<std::size_t>(rows * r));
  starting_q(layer, ctx, state, r, q.data());
  multiply_p(v.data(), q.data(), rows, cols, r, p.data());
  orthonormalize(p.data(), rows, r);
  multiply_q(v.data(), p.data(), rows, cols, r, q.data());
  put_floats(out, p);
  put_floats(out, q);
  if (keep) {
    std::copy_n(q.data(), qn, state.data());
    state[qn] = 1.0f;
  }
}

float PowerSgdCompressor::encode_layer_with_feedback(std::span<const float> v, std::span<float> e,
                                                     const LayerShape& layer,
                                                     const MessageContext& ctx,
                                                     std::span<float> state, Rng& /*private_rng*/,
                                                     BitWriter& out,
                                                     std::span<float> decoded) const {
  const std::int64_t rows = layer.rows, cols = layer.cols;
  check_size(v.size(), layer, "message slice");
  check_size(e.size(), layer, "error memory slice");
  check_size(decoded.size(), layer, "output slice");
  if (!compressible(rows, cols)) {  // float32 as it is: decoded = p, e = p - p
    float extent = 0.0f;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const float p = v[i] + e[i];
      out.put_f32(p);
      decoded[i] = p;
      e[i] = p - p;
      extent = max_magnitude(extent, std::fabs(p));
    }
    return extent;
  }
  check_rank(rank_, "encode");
  const int r = effective_rank(rows, cols, rank_);
  const bool keep = keeps_state(layer, state);
  const std::int64_t qn = cols * r;
  std::vector<float> q(static_cast<std::size_t>(qn)), p(static_cast<std::size_t>(rows * r));
  starting_q(layer, ctx, state, r, q.data());
  const float extent = power_step_with_feedback(v.data(), e.data(), rows, cols, r, q.data(),
                                                p.data(), decoded.data());
  put_floats(out, p);
  put_floats(out, q);
  if (keep) {
    std::copy_n(q.data(), qn, state.data());
    state[qn] = 1.0f;
  }
  return extent;
}

bool PowerSgdCompressor::keeps_state(const LayerShape& layer, std::span<const float> state) const {
  // An empty state (a client that keeps none) encodes cold and remembers nothing.
  const bool keep = warm_start_ && !state.empty();
  if (keep && static_cast<std::int64_t>(state.size()) != state_floats(layer))
    throw std::invalid_argument("powersgd: layer state has " + std::to_string(state.size()) +
                                " floats, expected " + std::to_string(state_floats(layer)));
  return keep;
}

void PowerSgdCompressor::starting_q(const LayerShape& layer, const MessageContext& ctx,
                                    std::span<const float> state, int r, float* q) const {
  const std::int64_t qn = layer.cols * r;
  if (keeps_state(layer, state) && state[qn] != 0.0f)
    std::copy_n(state.data(), qn, q);
  else
    initial_q(ctx, layer, r, q);
}

void PowerSgdCompressor::decode_layer(BitReader& in, const LayerShape& layer,
                                      const MessageContext& /*ctx*/, std::span<float> out) const {
  const std::int64_t rows = layer.rows, cols = layer.cols;
  check_size(out.size(), layer, "output slice");
  if (!compressible(rows, cols)) {
    for (float& x : out) x = in.get_f32();
    return;
  }
  check_rank(rank_, "decode");
  const int r = effective_rank(rows, cols, rank_);
  std::vector<float> p(static_cast<std::size_t>(rows * r)), q(static_cast<std::size_t>(cols * r));
  get_floats(in, p);
  get_floats(in, q);
  reconstruct(p.data(), q.data(), rows, cols, r, out.data());
}

std::int64_t PowerSgdCompressor::state_floats(const LayerShape& layer) const {
  if (!warm_start_ || !compressible(layer.rows, layer.cols) || rank_ < 1) return 0;
  return layer.cols * effective_rank(layer.rows, layer.cols, rank_) + 1;
}

CompressorRegistration registration() {
  return {"powersgd",
          "rank-r power iteration per matrix layer (Vogels et al. 2019)",
          {field(opt_int("rank", 2, "rank r of the approximation", 1), &CompressorOptions::rank),
           field(opt_bool("warm_start", true, "start from the previous Q"),
                 &CompressorOptions::warm_start),
           // How the exchange moves the factors (Note [Exchange plans]); a broadcast has one
           // message, so the downlink slot has no mode.
           field(opt_enum("mode", "reduce", {"reduce", "per_client"},
                          "reduce: all-reduce P and Q (mean aggregator only); per_client: "
                          "each client sends its own P, Q"),
                 &CompressorOptions::mode, kUplinkSlot)},
          [](const CompressorOptions& o) -> std::unique_ptr<Compressor> {
            require_usage(o.rank >= 1, fmt::format("{}.rank = {} is not allowed: expected >= 1",
                                                   o.section, o.rank));
            require_one_of(o, "mode", o.mode, {"reduce", "per_client"});
            return std::make_unique<PowerSgdCompressor>(o.rank, o.warm_start);
          }};
}

}  // namespace cohort::compress::powersgd
