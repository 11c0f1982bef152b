#include "robust/tm.h"

#include <fmt/format.h>
#include <immintrin.h>

#include <vector>

#include "core/errors.h"
#include "robust/cm.h"

namespace cohort::robust {

void TrimmedMean::check_inputs(int n) const {
  if (n > 2 * b_) return;
  throw UsageError(
      fmt::format("tm with b={} needs n > 2b = {} inputs, got {}; with {} inputs b <= {} works", b_,
                  2 * b_, n, n, n >= 1 ? (n - 1) / 2 : 0));
}

namespace {

// out[k] = (sum over the kept ranks, in rank order, of x[k] in double) / kept, as a float.
[[gnu::always_inline]] inline void kept_mean_body(const float* s, std::int64_t stride,
                                                  const int* slots, int count, double kept,
                                                  std::int64_t len, float* out) {
  for (std::int64_t k = 0; k < len; ++k) {
    double acc = 0;
    for (int r = 0; r < count; ++r) acc += static_cast<double>(s[slots[r] * stride + k]);
    out[k] = static_cast<float>(acc / kept);
  }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: the intrinsics' pass-through
__attribute__((target("avx512f"))) void kept_mean_avx512(const float* s, std::int64_t stride,
                                                         const int* slots, int count, double kept,
                                                         std::int64_t len, float* out) {
  const __m512d kv = _mm512_set1_pd(kept);
  std::int64_t k = 0;
  for (; k + 8 <= len; k += 8) {
    __m512d acc = _mm512_setzero_pd();
    for (int r = 0; r < count; ++r)
      acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_loadu_ps(s + slots[r] * stride + k)));
    _mm256_storeu_ps(out + k, _mm512_cvtpd_ps(_mm512_div_pd(acc, kv)));
  }
  kept_mean_body(s + k, stride, slots, count, kept, len - k, out + k);
}
#pragma GCC diagnostic pop

// The same sums on AVX2: 8 columns as two vectors of 4 doubles, each lane adding the kept ranks
// in rank order and dividing once, as above.
__attribute__((target("avx2"))) void kept_mean_avx2(const float* s, std::int64_t stride,
                                                    const int* slots, int count, double kept,
                                                    std::int64_t len, float* out) {
  const __m256d kv = _mm256_set1_pd(kept);
  std::int64_t k = 0;
  for (; k + 8 <= len; k += 8) {
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (int r = 0; r < count; ++r) {
      const float* x = s + slots[r] * stride + k;
      lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm_loadu_ps(x)));
      hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm_loadu_ps(x + 4)));
    }
    _mm_storeu_ps(out + k, _mm256_cvtpd_ps(_mm256_div_pd(lo, kv)));
    _mm_storeu_ps(out + k + 4, _mm256_cvtpd_ps(_mm256_div_pd(hi, kv)));
  }
  kept_mean_body(s + k, stride, slots, count, kept, len - k, out + k);
}

}  // namespace

void TrimmedMean::aggregate(const Messages& m, const Context&, float* out, Report& report) {
  const int n = m.n;
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  const SortNetwork net = make_sort_network(n, b_, n - b_);
  const double kept = n - 2 * b_;
  std::vector<int> slots(net.rank_slot.begin() + b_, net.rank_slot.begin() + (n - b_));
  const int isa = detail::isa_level();
  report.selected.clear();
  sort_columns(rows, m.d, net,
               [&](std::int64_t k0, std::int64_t len, const float* s, std::int64_t stride) {
                 if (isa == 2)
                   kept_mean_avx512(s, stride, slots.data(), n - 2 * b_, kept, len, out + k0);
                 else if (isa == 1)
                   kept_mean_avx2(s, stride, slots.data(), n - 2 * b_, kept, len, out + k0);
                 else
                   kept_mean_body(s, stride, slots.data(), n - 2 * b_, kept, len, out + k0);
               });
}

AggregatorRegistration tm_registration() {
  return {"tm",
          "coordinate-wise trimmed mean: drop the b largest and b smallest (needs n > 2b)",
          {field(opt_int("b", 1, "values trimmed per side"), &AggregatorOptions::b)},
          [](const AggregatorOptions& o) {
            require_option(o.b >= 0, "b", fmt::format("must be >= 0, got {}", o.b));
            return std::make_unique<TrimmedMean>(o.b);
          }};
}

}  // namespace cohort::robust
