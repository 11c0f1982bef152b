#include "robust/zeno.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "core/errors.h"

namespace cohort::robust {

void Zeno::check_inputs(int n) const {
  if (n > b_) return;
  throw UsageError(
      fmt::format("zeno with b={} needs n > b = {} inputs, got {}; with {} inputs b <= {} works",
                  b_, b_, n, n, std::max(0, n - 1)));
}

void Zeno::aggregate(const Messages& m, const Context& ctx, float* out, Report& report) {
  if (!ctx.validation_loss || ctx.x == nullptr)
    throw std::logic_error("zeno: the context has no validation loss or model");
  if (ctx.shard.sharded()) throw std::logic_error("zeno: needs whole messages, not a shard");
  const int n = m.n;
  const std::size_t d = static_cast<std::size_t>(m.d);
  const double base = ctx.validation_loss(ctx.x);
  std::vector<float> y(d);
  report.scores.assign(n, 0.0);
  for (int i = 0; i < n; ++i) {
    const float* u = m.row(i);
    double norm2 = 0;
    for (std::size_t k = 0; k < d; ++k) {
      const double uk = u[k];
      norm2 += uk * uk;
      y[k] = static_cast<float>(static_cast<double>(ctx.x[k]) - gamma_ * uk);
    }
    report.scores[i] = base - ctx.validation_loss(y.data()) - rho_ * norm2;
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return report.scores[a] > report.scores[b]; });
  std::vector<int> keep(order.begin(), order.begin() + (n - b_));
  std::sort(keep.begin(), keep.end());
  std::vector<const float*> rows;
  report.selected.clear();
  for (int i : keep) {
    rows.push_back(m.row(i));
    report.selected.push_back(m.client(i));
  }
  combine_rows(rows, nullptr, static_cast<double>(rows.size()), m.d, out);
}

}  // namespace cohort::robust
