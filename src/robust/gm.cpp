#include "robust/gm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "core/errors.h"
#include "robust/chunk_tree.h"
#include "robust/krum.h"

namespace cohort::robust {

// Note [Direct Weiszfeld]
// The direct path iterates on the d-vectors but never stores an iterate: z_t on a coordinate k is
// sum_i beta_i u_ik / sum_i beta_i, which needs column k of the input and nothing else. So pass t
// (t = 0 .. T-1) walks the coordinates in small blocks (64 on AVX-512 and the generic path, 32 on
// AVX2; n = 100 rows of 64 floats fill half of L1), computes z_t on the block from the previous
// pass's betas (pass 0: z_0 = 0, or the mean: beta_i = 1 and sum n), and while the block is still
// in cache adds (u_ik - z_tk)^2 into per-row partial distances. Pass T writes z_T with
// combine_rows, as the Gram path does. The input is read T + 1 times; there is no Gram product.
// Rounding: z_tk is a double sum of the rows in row order (one fma per row) divided by sum beta
// and stays in double; e = u_ik - z_tk is taken in double and the squares are summed as in
// Note [cclip passes]: eight lanes per row (lane l takes the coordinates k = l mod 8 of a chunk in
// ascending k, acc = fma(e, e, acc)), the lanes added in order, the chunks over the fixed tree of
// Note [Chunked sums]. A squared distance is thus within about (4096/8 + 8 + log2 of the chunk
// count) 2^-53 relative of the exact one to the computed z_t, itself within (n + 1) 2^-53 of
// sum_i beta_i |u_ik| / sum beta of the exact z_t: some 2^-43 in all, where the Gram path's
// float products give ~2^-18 relative to the rows' centred sizes (Note [Gram distances]). The
// block size and vector width never change which operations run in which order: the AVX-512,
// AVX2 and generic kernels give the same bits, at any rank count (Note [Robust kernels]).

// Note [gm path choice]
// Both paths end with the same weighted sum of the rows (one read of the input). Before it, the
// Gram path reads the input once (centring it into blocks) and runs (n+1)(n+2)/2 multiply-adds
// per coordinate; the direct path reads it T times, with one or two multiply-adds per value read,
// which overlap the reads. So the direct path is the cheaper one when
//     (n+1)(n+2)/2 > kappa(n) (T - 1) n,
// kappa being the number of the Gram product's multiply-adds that take as long as reading one
// value once more. The rule looks at n and T only (never the data, d, the rank count or the ISA
// path), so every rank takes the same path and the results stay bitwise rank- and ISA-invariant.
// Measured with one thread, AVX-512 kernels, d = 1e6 (gram / direct ms, best of 3-5; the
// timings vary by ~10% from run to run):
//     T = 2:  n = 8: 5.4 / 5.7,     n = 12: 9.2 / 8.5,    n = 16: 13.1 / 11.5
//     T = 3:  n = 24: 26.0 / 26.5,  n = 28: 32.1 / 32.2,  n = 32: 36.8 / 36.1,
//             n = 40: 55.3 / 48.9,  n = 100: 234 / 137
//     T = 5:  n = 64: 106 / 117,    n = 68: 124 / 121,    n = 100: 226 / 216
//     T = 8:  n = 100: 236 / 374,   n = 120: 320 / 416
// The break-even kappa grows with n (7.1 at n ~ 11, 8.0 at n ~ 29, 8.8 at n ~ 67, above 12.5
// at n = 120): a pass reads n rows side by side, and its rate drops as n grows (0.28 ns per
// value at n <= 50, 0.39 at n = 120), while the Gram tiles get more efficient. kappa(n) =
// 7 + n/32 follows that: the direct path is taken from n = 12 at T = 2, 29 at T = 3, 71 at
// T = 5 and 169 at T = 8, and always at T = 1 (one pass against the Gram path's two plus the
// product). When several ranks share the memory bandwidth, the passes slow down and the
// product does not, so there the crossover moves to larger n; the rule ignores that, as it
// must.

namespace {

constexpr int kLanes = 8;
constexpr std::int64_t kBlock = 64;  // generic and AVX-512 block; AVX2 uses 32

// The kernels read the n rows of a block side by side; each prefetches its rows' lines two
// blocks ahead, so they arrive while the block before is summed and stay in L1 until read
// (at n = 100, d = 1e6 and T = 3, 512 values ahead, as combine_rows does, made the passes ~1.4x
// slower). Prefetches never change results.
template <std::int64_t B>
[[gnu::always_inline]] inline void prefetch_block_ahead(const float* x) {
  for (std::int64_t l = 0; l < B / 16; ++l) __builtin_prefetch(x + 2 * B + 16 * l, 0, 3);
}

// Pass t on the coordinates [from, to) of the chunk at `at` (Note [Direct Weiszfeld]): z_k =
// (sum_i beta_i u_ik) / total, or 0 when beta is null; then lanes[8 i + k mod 8] += (u_ik -
// z_k)^2 by fma, k ascending. `from` is a multiple of 8.
[[gnu::always_inline]] inline void pass_body(const float* const* rows, int n, std::int64_t at,
                                             std::int64_t from, std::int64_t to, const double* beta,
                                             double total, double* lanes) {
  alignas(64) double z[kBlock];
  for (std::int64_t k0 = from; k0 < to; k0 += kBlock) {
    const std::int64_t len = std::min(kBlock, to - k0);
    for (std::int64_t k = 0; k < len; ++k) z[k] = 0.0;
    if (beta != nullptr) {
      for (int i = 0; i < n; ++i) {
        const float* x = rows[i] + at + k0;
        const double c = beta[i];
        for (std::int64_t k = 0; k < len; ++k) z[k] = std::fma(c, static_cast<double>(x[k]), z[k]);
      }
      for (std::int64_t k = 0; k < len; ++k) z[k] = z[k] / total;
    }
    for (int i = 0; i < n; ++i) {
      const float* x = rows[i] + at + k0;
      double* l = lanes + static_cast<std::size_t>(i) * kLanes;
      for (std::int64_t k = 0; k < len; ++k) {
        const double e = static_cast<double>(x[k]) - z[k];
        l[k % kLanes] = std::fma(e, e, l[k % kLanes]);
      }
    }
  }
}

#define COHORT_PASS_PARAMS                                                                \
  const float *const *rows, int n, std::int64_t at, std::int64_t len, const double *beta, \
      double total, double *lanes
#define COHORT_PASS_ARGS rows, n, at, len, beta, total, lanes

// A block of 64 coordinates: z in eight registers of eight doubles (the rows in order, as
// pass_body), then each row's eight lanes in one register.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: the intrinsics' pass-through
__attribute__((target("avx512f"))) void pass_avx512(COHORT_PASS_PARAMS) {
  const __m512d tot = _mm512_set1_pd(total);
  std::int64_t k0 = 0;
  for (; k0 + kBlock <= len; k0 += kBlock) {
    __m512d z[8];
    for (int q = 0; q < 8; ++q) z[q] = _mm512_setzero_pd();
    if (beta != nullptr) {
      for (int i = 0; i < n; ++i) {
        const float* x = rows[i] + at + k0;
        prefetch_block_ahead<kBlock>(x);
        const __m512d c = _mm512_set1_pd(beta[i]);
        for (int q = 0; q < 8; ++q)
          z[q] = _mm512_fmadd_pd(c, _mm512_cvtps_pd(_mm256_loadu_ps(x + 8 * q)), z[q]);
      }
      for (int q = 0; q < 8; ++q) z[q] = _mm512_div_pd(z[q], tot);
    }
    for (int i = 0; i < n; ++i) {
      const float* x = rows[i] + at + k0;
      if (beta == nullptr) prefetch_block_ahead<kBlock>(x);  // not read by the sums above
      double* l = lanes + static_cast<std::size_t>(i) * kLanes;
      __m512d a = _mm512_loadu_pd(l);
      for (int q = 0; q < 8; ++q) {
        const __m512d e = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + 8 * q)), z[q]);
        a = _mm512_fmadd_pd(e, e, a);
      }
      _mm512_storeu_pd(l, a);
    }
  }
  if (k0 < len) pass_body(rows, n, at, k0, len, beta, total, lanes);
}
#pragma GCC diagnostic pop

// A block of 32 coordinates: z in eight registers of four doubles, then each row's lanes 0-3
// and 4-7 in two registers. Each lane sees the same operations in the same order as above.
__attribute__((target("avx2,fma"))) void pass_avx2(COHORT_PASS_PARAMS) {
  constexpr std::int64_t B = 32;
  const __m256d tot = _mm256_set1_pd(total);
  std::int64_t k0 = 0;
  for (; k0 + B <= len; k0 += B) {
    __m256d z[8];
    for (int q = 0; q < 8; ++q) z[q] = _mm256_setzero_pd();
    if (beta != nullptr) {
      for (int i = 0; i < n; ++i) {
        const float* x = rows[i] + at + k0;
        prefetch_block_ahead<B>(x);
        const __m256d c = _mm256_set1_pd(beta[i]);
        for (int q = 0; q < 8; ++q)
          z[q] = _mm256_fmadd_pd(c, _mm256_cvtps_pd(_mm_loadu_ps(x + 4 * q)), z[q]);
      }
      for (int q = 0; q < 8; ++q) z[q] = _mm256_div_pd(z[q], tot);
    }
    for (int i = 0; i < n; ++i) {
      const float* x = rows[i] + at + k0;
      if (beta == nullptr) prefetch_block_ahead<B>(x);
      double* l = lanes + static_cast<std::size_t>(i) * kLanes;
      __m256d lo = _mm256_loadu_pd(l), hi = _mm256_loadu_pd(l + 4);
      for (int g = 0; g < 4; ++g) {
        const __m256d el = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + 8 * g)), z[2 * g]);
        const __m256d eh =
            _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + 8 * g + 4)), z[2 * g + 1]);
        lo = _mm256_fmadd_pd(el, el, lo);
        hi = _mm256_fmadd_pd(eh, eh, hi);
      }
      _mm256_storeu_pd(l, lo);
      _mm256_storeu_pd(l + 4, hi);
    }
  }
  if (k0 < len) pass_body(rows, n, at, k0, len, beta, total, lanes);
}

void pass_generic(COHORT_PASS_PARAMS) { pass_body(rows, n, at, 0, len, beta, total, lanes); }

void pass(COHORT_PASS_PARAMS) {
  switch (detail::isa_level()) {
    case 2:
      return pass_avx512(COHORT_PASS_ARGS);
    case 1:
      return pass_avx2(COHORT_PASS_ARGS);
    default:
      return pass_generic(COHORT_PASS_ARGS);
  }
}
#undef COHORT_PASS_PARAMS
#undef COHORT_PASS_ARGS

// ||u_i - z||^2 for every row, z given by beta and total as in pass_body, summed over all
// coordinates (the whole message under the shard plan: collective over shard.gather).
std::vector<double> distances(const std::vector<const float*>& rows, std::int64_t d,
                              const double* beta, double total, const Shard& shard) {
  const int n = static_cast<int>(rows.size());
  const std::int64_t d_total = shard.d_total > 0 ? shard.d_total : d;
  ChunkTree tree(shard.offset / kSumChunk, (d_total + kSumChunk - 1) / kSumChunk,
                 static_cast<std::size_t>(n));
  std::vector<double> lanes(static_cast<std::size_t>(n) * kLanes), partial(n);
  for (std::int64_t c0 = 0; c0 < d; c0 += kSumChunk) {
    std::fill(lanes.begin(), lanes.end(), 0.0);
    pass(rows.data(), n, c0, std::min(kSumChunk, d - c0), beta, total, lanes.data());
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int l = 0; l < kLanes; ++l) s += lanes[static_cast<std::size_t>(i) * kLanes + l];
      partial[i] = s;
    }
    tree.push(partial.data());
  }
  return tree.total(shard.gather);
}

}  // namespace

double gram_norm2(const std::vector<double>& h, int R, const std::vector<double>& q) {
  double s = 0;
  for (int i = 0; i < R; ++i) {
    if (q[i] == 0.0) continue;
    double row = 0;
    for (int j = 0; j < R; ++j) row += h[static_cast<std::size_t>(i) * R + j] * q[j];
    s += q[i] * row;
  }
  return std::max(0.0, s);
}

bool gm_direct_is_cheaper(int n, int iters) {  // Note [gm path choice]
  const double n1 = n + 1.0;
  const double kappa = 7.0 + n / 32.0;
  return n1 * (n1 + 1.0) / 2.0 > kappa * (iters - 1) * n;
}

void GeometricMedian::check_inputs(int n) const {
  if (n < 1) throw UsageError("gm needs at least 1 input, got 0");
}

void GeometricMedian::aggregate(const Messages& m, const Context& ctx, float* out, Report& report) {
  const int n = m.n;
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  std::vector<double> w(n, 1.0 / n);
  if (!m.weights.empty()) {
    double total = 0;
    for (int i = 0; i < n; ++i) total += m.weights[i];
    if (!(total > 0)) throw std::runtime_error("gm: the message weights do not sum to > 0");
    for (int i = 0; i < n; ++i) w[i] = m.weights[i] / total;
  }
  const bool direct =
      path_ == GmPath::kDirect || (path_ == GmPath::kAuto && gm_direct_is_cheaper(n, iters_));
  std::vector<double> beta(n, 0.0);
  double total = 1;
  report.selected.clear();
  if (direct) {  // Note [Direct Weiszfeld]
    std::vector<double> ones;
    if (init_mean_) ones.assign(n, 1.0);
    std::vector<double> dist2 =
        distances(rows, m.d, init_mean_ ? ones.data() : nullptr, n, ctx.shard);
    for (int t = 0; t < iters_; ++t) {
      total = 0;
      for (int i = 0; i < n; ++i) {
        beta[i] = w[i] / std::max(nu_, std::sqrt(dist2[i]));
        total += beta[i];
      }
      if (t + 1 < iters_) dist2 = distances(rows, m.d, beta.data(), total, ctx.shard);
    }
    combine_rows(rows, beta.data(), total, m.d, out);
    return;
  }
  const int R = n + 1;  // basis {u_i - mu} and mu (Note [Iterates as combinations])
  const auto h = centered_gram(rows, n, /*with_mean=*/true, m.d, ctx.shard);
  std::vector<double> c(R, 0.0), q(R);
  if (init_mean_) c[n] = 1.0;  // z0 = mu
  for (int t = 0; t < iters_; ++t) {
    total = 0;
    for (int i = 0; i < n; ++i) {
      q = c;
      q[i] -= 1.0;  // z - u_i = z - (u_i - mu) - mu
      q[n] -= 1.0;
      beta[i] = w[i] / std::max(nu_, std::sqrt(gram_norm2(h, R, q)));
      total += beta[i];
    }
    for (int i = 0; i < n; ++i) c[i] = beta[i] / total;
    c[n] = 1.0;  // sum_i beta_i / total: z is an affine combination of the u_i
  }
  combine_rows(rows, beta.data(), total, m.d, out);
}

AggregatorRegistration gm_registration() {
  using O = AggregatorOptions;
  return {"gm",
          "geometric median by smoothed Weiszfeld (RFA)",
          {field(opt_int("iters", 3, "Weiszfeld iterations T", 1), &O::iters),
           field(opt_float("nu", 0.1, "smoothing: distances below nu count as nu", 0, INFINITY,
                           true),
                 &O::nu),
           field(opt_enum("init", "zero", {"zero", "mean"}, "starting point z0"), &O::init)},
          [](const O& o) {
            require_option(o.iters >= 1, "iters", fmt::format("must be >= 1, got {}", o.iters));
            require_option(o.nu > 0 && std::isfinite(o.nu), "nu",
                           fmt::format("must be > 0, got {}", o.nu));
            require_option(o.init == "zero" || o.init == "mean", "init",
                           fmt::format("must be zero or mean, got '{}'", o.init));
            return std::make_unique<GeometricMedian>(o.iters, o.nu, o.init == "mean");
          }};
}

}  // namespace cohort::robust
