#include "robust/cclip.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.h"
#include "robust/gm.h"
#include "robust/krum.h"

namespace cohort::robust {

void CenteredClip::check_inputs(int n) const {
  if (n < 1) throw UsageError("cclip needs at least 1 input, got 0");
}

void CenteredClip::aggregate(const Messages& m, const Context& ctx, float* out, Report& report) {
  const int n = m.n;
  if (static_cast<std::int64_t>(v_.size()) != m.d) v_.assign(static_cast<std::size_t>(m.d), 0.0f);
  // Basis: u_i - mu (i < n), v0 - mu (index n), mu (index n + 1).
  const int R = n + 2;
  std::vector<const float*> rows(n + 1);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  rows[n] = v_.data();
  const auto h = centered_gram(rows, n, /*with_mean=*/true, m.d, ctx.shard);
  std::vector<double> c(R, 0.0), q(R), step(R);
  c[n] = 1.0;  // v = v0
  c[n + 1] = 1.0;
  for (int t = 0; t < iters_; ++t) {
    std::fill(step.begin(), step.end(), 0.0);
    for (int i = 0; i < n; ++i) {
      q = c;  // q = v - u_i
      q[i] -= 1.0;
      q[n + 1] -= 1.0;
      const double dist = std::sqrt(gram_norm2(h, R, q));
      const double clip = dist > 0 ? std::min(1.0, tau_ / dist) : 1.0;
      for (int j = 0; j < R; ++j) step[j] -= clip * q[j];  // (u_i - v) * clip
    }
    for (int j = 0; j < R; ++j) c[j] += step[j] / n;
  }
  // v = sum_i c_i u_i + c_n v0 + (c_{n+1} - sum_{j<=n} c_j) mu, mu = (1/n) sum_i u_i.
  double sum_c = 0;
  for (int j = 0; j <= n; ++j) sum_c += c[j];
  const double mu_share = (c[n + 1] - sum_c) / n;
  std::vector<double> coef(n + 1);
  for (int i = 0; i < n; ++i) coef[i] = c[i] + mu_share;
  coef[n] = c[n];
  report.selected.clear();
  combine_rows(rows, coef.data(), 1.0, m.d, out);
  std::memcpy(v_.data(), out, sizeof(float) * static_cast<std::size_t>(m.d));
}

}  // namespace cohort::robust
