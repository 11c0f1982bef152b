#include "robust/gm.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "robust/krum.h"

namespace cohort::robust {

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

void GeometricMedian::check_inputs(int n) const {
  if (n < 1) throw UsageError("gm needs at least 1 input, got 0");
}

void GeometricMedian::aggregate(const Messages& m, const Context& ctx, float* out, Report& report) {
  const int n = m.n, R = n + 1;  // basis {u_i - mu} and mu (Note [Iterates as combinations])
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  std::vector<double> w(n, 1.0 / n);
  if (!m.weights.empty()) {
    double total = 0;
    for (int i = 0; i < n; ++i) total += m.weights[i];
    if (!(total > 0)) throw std::runtime_error("gm: the message weights do not sum to > 0");
    for (int i = 0; i < n; ++i) w[i] = m.weights[i] / total;
  }
  const auto h = centered_gram(rows, n, /*with_mean=*/true, m.d, ctx.shard);
  std::vector<double> c(R, 0.0), q(R), beta(n);
  if (init_mean_) c[n] = 1.0;  // z0 = mu
  double total = 1;
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
  report.selected.clear();
  combine_rows(rows, beta.data(), total, m.d, out);
}

}  // namespace cohort::robust
