#include "robust/tm.h"

#include <fmt/format.h>

#include "core/errors.h"
#include "robust/cm.h"

namespace cohort::robust {

void TrimmedMean::check_inputs(int n) const {
  if (n > 2 * b_) return;
  throw UsageError(
      fmt::format("tm with b={} needs n > 2b = {} inputs, got {}; with {} inputs b <= {} works", b_,
                  2 * b_, n, n, n >= 1 ? (n - 1) / 2 : 0));
}

void TrimmedMean::aggregate(const Messages& m, const Context&, float* out, Report& report) {
  const int n = m.n;
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  const SortNetwork net = make_sort_network(n, b_, n - b_);
  const double kept = n - 2 * b_;
  std::vector<double> acc;
  report.selected.clear();
  sort_columns(rows, m.d, net,
               [&](std::int64_t k0, std::int64_t len, const float* s, std::int64_t stride) {
                 acc.assign(static_cast<std::size_t>(len), 0.0);
                 for (int r = b_; r < n - b_; ++r) {
                   const float* x = s + net.rank_slot[r] * stride;
                   for (std::int64_t k = 0; k < len; ++k) acc[k] += static_cast<double>(x[k]);
                 }
                 for (std::int64_t k = 0; k < len; ++k)
                   out[k0 + k] = static_cast<float>(acc[k] / kept);
               });
}

}  // namespace cohort::robust
