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

AggregatorRegistration zeno_registration() {
  using O = AggregatorOptions;
  return {"zeno",
          "average of the n-b messages with the best validation-loss descent score",
          {field(opt_int("b", 1, "messages dropped"), &O::b),
           field(opt_float("rho", 5e-4, "weight of ||u||^2", 0), &O::rho),
           field(opt_float("gamma", 0.1, "step used in the score", 0, INFINITY, true), &O::gamma),
           field(opt_int("batch", 32, "server validation minibatch (test rows)", 1), &O::batch)},
          [](const O& o) {
            require_option(o.b >= 0, "b", fmt::format("must be >= 0, got {}", o.b));
            require_option(o.rho >= 0 && std::isfinite(o.rho), "rho",
                           fmt::format("must be >= 0, got {}", o.rho));
            require_option(o.gamma > 0 && std::isfinite(o.gamma), "gamma",
                           fmt::format("must be > 0, got {}", o.gamma));
            require_option(o.batch >= 1, "batch", fmt::format("must be >= 1, got {}", o.batch));
            return std::make_unique<Zeno>(o.b, o.rho, o.gamma);
          }};
}

}  // namespace cohort::robust
