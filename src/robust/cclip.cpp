#include "robust/cclip.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <immintrin.h>

#include <fmt/format.h>

#include "core/errors.h"
#include "robust/chunk_tree.h"

namespace cohort::robust {

// Note [cclip passes]
// Centered clipping reads its n inputs L + 1 times: once for the distances ||u_i - v_0||, then
// once per iteration, which writes v_{t+1} chunk by chunk and, while the chunk's rows are still
// in cache, adds its part of ||u_i - v_{t+1}|| for the next iteration. (The Gram-matrix form of
// Note [Iterates as combinations] reads them twice but pays an n^2 d product; for the usual
// L = 1 or 2 the direct passes are cheaper.) Squared distances are summed in double, eight lanes
// per row (lane l takes the coordinates k = l mod 8 of a chunk, e = u - v rounded to float, then
// acc = fma(e, e, acc)), the lanes in order, the chunks over the fixed tree of Note [Chunked
// sums]; the update accumulates fma(clip_i, u_i - v, acc) over the rows in order, in double. The
// kernels are plain lane loops compiled for each ISA with explicit fma (Note [Robust kernels]):
// the same bits on every path and, under the shard plan, at any rank count.

namespace {

constexpr int kLanes = 8;
constexpr std::int64_t kUpdateBlock = 512;

// out[i] = sum over k < len of (rows[i][k] - v[k])^2.
[[gnu::always_inline]] inline void distances_body(const float* const* rows, int n,
                                                  std::int64_t at, const float* v,
                                                  std::int64_t len, double* out) {
  for (int i = 0; i < n; ++i) {
    const float* u = rows[i] + at;
    double acc[kLanes] = {};
    std::int64_t k = 0;
    for (; k + kLanes <= len; k += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const double e = static_cast<double>(u[k + l] - v[k + l]);
        acc[l] = std::fma(e, e, acc[l]);
      }
    for (; k < len; ++k) {
      const double e = static_cast<double>(u[k] - v[k]);
      acc[k % kLanes] = std::fma(e, e, acc[k % kLanes]);
    }
    double s = 0;
    for (int l = 0; l < kLanes; ++l) s += acc[l];
    out[i] = s;
  }
}

// next[k] = v[k] + (sum_i clip[i] (u_i[k] - v[k])) / n, in double, rows in order.
[[gnu::always_inline]] inline void update_body(const float* const* rows, int n, std::int64_t at,
                                               const double* clip, const float* v,
                                               std::int64_t len, float* next) {
  alignas(64) double acc[kUpdateBlock];
  for (std::int64_t k0 = 0; k0 < len; k0 += kUpdateBlock) {
    const std::int64_t m = std::min(kUpdateBlock, len - k0);
    for (std::int64_t k = 0; k < m; ++k) acc[k] = 0.0;
    for (int i = 0; i < n; ++i) {
      const float* u = rows[i] + at + k0;
      const double c = clip[i];
      for (std::int64_t k = 0; k < m; ++k)
        acc[k] = std::fma(c, static_cast<double>(u[k]) - static_cast<double>(v[k0 + k]), acc[k]);
    }
    for (std::int64_t k = 0; k < m; ++k)
      next[k0 + k] = static_cast<float>(static_cast<double>(v[k0 + k]) + acc[k] / n);
  }
}

#define COHORT_DIST_PARAMS \
  const float *const *rows, int n, std::int64_t at, const float *v, std::int64_t len, double *out
#define COHORT_DIST_ARGS rows, n, at, v, len, out
#define COHORT_UPDATE_PARAMS                                                                 \
  const float *const *rows, int n, std::int64_t at, const double *clip, const float *v, \
      std::int64_t len, float *next
#define COHORT_UPDATE_ARGS rows, n, at, clip, v, len, next
// The AVX-512 twins hold the eight lanes in one register: the same operations in the same order.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: the intrinsics' pass-through
__attribute__((target("avx512f"))) void distances_avx512(COHORT_DIST_PARAMS) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {  // four rows at once share the loads of v
    const float *u0 = rows[i] + at, *u1 = rows[i + 1] + at, *u2 = rows[i + 2] + at,
                *u3 = rows[i + 3] + at;
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    std::int64_t k = 0;
    for (; k + kLanes <= len; k += kLanes) {
      if (k % 16 == 0)  // one line of each row per 16 values (across page ends)
        for (const float* u : {u0, u1, u2, u3}) detail::prefetch_row_ahead(u + k, 1);
      const __m256 vv = _mm256_loadu_ps(v + k);
      const __m512d e0 = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_loadu_ps(u0 + k), vv));
      const __m512d e1 = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_loadu_ps(u1 + k), vv));
      const __m512d e2 = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_loadu_ps(u2 + k), vv));
      const __m512d e3 = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_loadu_ps(u3 + k), vv));
      a0 = _mm512_fmadd_pd(e0, e0, a0);
      a1 = _mm512_fmadd_pd(e1, e1, a1);
      a2 = _mm512_fmadd_pd(e2, e2, a2);
      a3 = _mm512_fmadd_pd(e3, e3, a3);
    }
    alignas(64) double acc[4][kLanes];
    _mm512_store_pd(acc[0], a0);
    _mm512_store_pd(acc[1], a1);
    _mm512_store_pd(acc[2], a2);
    _mm512_store_pd(acc[3], a3);
    const float* u[4] = {u0, u1, u2, u3};
    for (int r = 0; r < 4; ++r) {
      for (std::int64_t j = k; j < len; ++j) {
        const double e = static_cast<double>(u[r][j] - v[j]);
        acc[r][j % kLanes] = std::fma(e, e, acc[r][j % kLanes]);
      }
      double sum = 0;
      for (int l = 0; l < kLanes; ++l) sum += acc[r][l];
      out[i + r] = sum;
    }
  }
  if (i < n) distances_body(rows + i, n - i, at, v, len, out + i);
}
#pragma GCC diagnostic pop
// The AVX2 twins hold the eight lanes in two registers of four doubles: the same operations in
// the same order again.
__attribute__((target("avx2,fma"))) void distances_avx2(COHORT_DIST_PARAMS) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {  // four rows at once share the loads of v
    const float* u[4] = {rows[i] + at, rows[i + 1] + at, rows[i + 2] + at, rows[i + 3] + at};
    __m256d lo[4], hi[4];
    for (int r = 0; r < 4; ++r) lo[r] = hi[r] = _mm256_setzero_pd();
    std::int64_t k = 0;
    for (; k + kLanes <= len; k += kLanes) {
      if (k % 16 == 0)
        for (const float* x : u) detail::prefetch_row_ahead(x + k, 1);
      const __m256 vv = _mm256_loadu_ps(v + k);
      for (int r = 0; r < 4; ++r) {
        const __m256 e = _mm256_sub_ps(_mm256_loadu_ps(u[r] + k), vv);
        const __m256d el = _mm256_cvtps_pd(_mm256_castps256_ps128(e));
        const __m256d eh = _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1));
        lo[r] = _mm256_fmadd_pd(el, el, lo[r]);
        hi[r] = _mm256_fmadd_pd(eh, eh, hi[r]);
      }
    }
    for (int r = 0; r < 4; ++r) {
      alignas(32) double acc[kLanes];
      _mm256_store_pd(acc, lo[r]);
      _mm256_store_pd(acc + 4, hi[r]);
      for (std::int64_t j = k; j < len; ++j) {
        const double e = static_cast<double>(u[r][j] - v[j]);
        acc[j % kLanes] = std::fma(e, e, acc[j % kLanes]);
      }
      double sum = 0;
      for (int l = 0; l < kLanes; ++l) sum += acc[l];
      out[i + r] = sum;
    }
  }
  if (i < n) distances_body(rows + i, n - i, at, v, len, out + i);
}
void distances_generic(COHORT_DIST_PARAMS) { distances_body(COHORT_DIST_ARGS); }
// 64 coordinates at a time in eight registers, the rows in order.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) void update_avx512(COHORT_UPDATE_PARAMS) {
  const __m512d inv_n = _mm512_set1_pd(static_cast<double>(n));
  std::int64_t k0 = 0;
  for (; k0 + 64 <= len; k0 += 64) {
    __m512d vd[8], acc[8];
    for (int q = 0; q < 8; ++q) {
      vd[q] = _mm512_cvtps_pd(_mm256_loadu_ps(v + k0 + 8 * q));
      acc[q] = _mm512_setzero_pd();
    }
    for (int i = 0; i < n; ++i) {
      const float* u = rows[i] + at + k0;
      detail::prefetch_row_ahead(u, 4);  // as combine_rows
      const __m512d c = _mm512_set1_pd(clip[i]);
      for (int q = 0; q < 8; ++q)
        acc[q] = _mm512_fmadd_pd(
            c, _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(u + 8 * q)), vd[q]), acc[q]);
    }
    for (int q = 0; q < 8; ++q)
      _mm256_storeu_ps(next + k0 + 8 * q,
                       _mm512_cvtpd_ps(_mm512_add_pd(vd[q], _mm512_div_pd(acc[q], inv_n))));
  }
  if (k0 < len) update_body(rows, n, at + k0, clip, v + k0, len - k0, next + k0);
}
#pragma GCC diagnostic pop
// 32 coordinates at a time in eight registers of four doubles, the rows in order.
__attribute__((target("avx2,fma"))) void update_avx2(COHORT_UPDATE_PARAMS) {
  const __m256d nd = _mm256_set1_pd(static_cast<double>(n));
  std::int64_t k0 = 0;
  for (; k0 + 32 <= len; k0 += 32) {
    __m256d vd[8], acc[8];
    for (int q = 0; q < 8; ++q) {
      vd[q] = _mm256_cvtps_pd(_mm_loadu_ps(v + k0 + 4 * q));
      acc[q] = _mm256_setzero_pd();
    }
    for (int i = 0; i < n; ++i) {
      const float* u = rows[i] + at + k0;
      detail::prefetch_row_ahead(u, 2);
      const __m256d c = _mm256_set1_pd(clip[i]);
      for (int q = 0; q < 8; ++q)
        acc[q] = _mm256_fmadd_pd(c, _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(u + 4 * q)), vd[q]),
                                 acc[q]);
    }
    for (int q = 0; q < 8; ++q)
      _mm_storeu_ps(next + k0 + 4 * q,
                    _mm256_cvtpd_ps(_mm256_add_pd(vd[q], _mm256_div_pd(acc[q], nd))));
  }
  if (k0 < len) update_body(rows, n, at + k0, clip, v + k0, len - k0, next + k0);
}
void update_generic(COHORT_UPDATE_PARAMS) { update_body(COHORT_UPDATE_ARGS); }

void distances(COHORT_DIST_PARAMS) {
  switch (detail::isa_level()) {
    case 2:
      return distances_avx512(COHORT_DIST_ARGS);
    case 1:
      return distances_avx2(COHORT_DIST_ARGS);
    default:
      return distances_generic(COHORT_DIST_ARGS);
  }
}
void update(COHORT_UPDATE_PARAMS) {
  switch (detail::isa_level()) {
    case 2:
      return update_avx512(COHORT_UPDATE_ARGS);
    case 1:
      return update_avx2(COHORT_UPDATE_ARGS);
    default:
      return update_generic(COHORT_UPDATE_ARGS);
  }
}
#undef COHORT_DIST_PARAMS
#undef COHORT_DIST_ARGS
#undef COHORT_UPDATE_PARAMS
#undef COHORT_UPDATE_ARGS

}  // namespace

void CenteredClip::check_inputs(int n) const {
  if (n < 1) throw UsageError("cclip needs at least 1 input, got 0");
}

void CenteredClip::aggregate(const Messages& m, const Context& ctx, float* out, Report& report) {
  const int n = m.n;
  const std::int64_t d = m.d;
  if (static_cast<std::int64_t>(v_.size()) != d) v_.assign(static_cast<std::size_t>(d), 0.0f);
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  const std::int64_t d_total = ctx.shard.d_total > 0 ? ctx.shard.d_total : d;
  const std::int64_t chunks = (d_total + kSumChunk - 1) / kSumChunk;
  const std::int64_t first = ctx.shard.offset / kSumChunk;
  std::vector<double> partial(static_cast<std::size_t>(n)), clip(static_cast<std::size_t>(n));
  std::vector<float> next(static_cast<std::size_t>(d));

  // Pass 0: the distances to v_0 (Note [cclip passes]).
  ChunkTree tree(first, chunks, static_cast<std::size_t>(n));
  for (std::int64_t c0 = 0; c0 < d; c0 += kSumChunk) {
    distances(rows.data(), n, c0, v_.data() + c0, std::min(kSumChunk, d - c0), partial.data());
    tree.push(partial.data());
  }
  std::vector<double> dist2 = tree.total(ctx.shard.gather);
  for (int t = 0; t < iters_; ++t) {
    for (int i = 0; i < n; ++i) {
      const double dist = std::sqrt(dist2[i]);
      clip[i] = dist > 0 ? std::min(1.0, tau_ / dist) : 1.0;
    }
    const bool more = t + 1 < iters_;
    ChunkTree next_tree(first, chunks, static_cast<std::size_t>(n));
    for (std::int64_t c0 = 0; c0 < d; c0 += kSumChunk) {
      const std::int64_t len = std::min(kSumChunk, d - c0);
      update(rows.data(), n, c0, clip.data(), v_.data() + c0, len, next.data() + c0);
      if (more) {
        distances(rows.data(), n, c0, next.data() + c0, len, partial.data());
        next_tree.push(partial.data());
      }
    }
    if (more) dist2 = next_tree.total(ctx.shard.gather);
    v_.swap(next);
  }
  report.selected.clear();
  std::memcpy(out, v_.data(), sizeof(float) * static_cast<std::size_t>(d));
}

AggregatorRegistration cclip_registration() {
  using O = AggregatorOptions;
  return {"cclip",
          "centered clipping from the previous aggregate",
          {field(opt_float("tau", 10.0, "clipping radius", 0, INFINITY, true), &O::tau),
           field(opt_int("iters", 1, "clipping iterations L", 1), &O::iters)},
          [](const O& o) {
            require_option(o.iters >= 1, "iters", fmt::format("must be >= 1, got {}", o.iters));
            require_option(o.tau > 0, "tau", fmt::format("must be > 0, got {}", o.tau));
            return std::make_unique<CenteredClip>(o.tau, o.iters);
          }};
}

}  // namespace cohort::robust
