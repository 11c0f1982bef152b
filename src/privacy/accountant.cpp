#include "privacy/accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "core/errors.h"

namespace cohort::privacy {

double rdp_sampled_gaussian(double q, double sigma, int order) {
  if (order < kMinOrder) throw std::logic_error("RDP order below 2");
  if (q <= 0) return 0.0;
  if (sigma <= 0) return std::numeric_limits<double>::infinity();
  const double a = order;
  if (q >= 1) return a / (2 * sigma * sigma);  // only the k = a term: a (a - 1) / (2 sigma^2)
  const double lq = std::log(q), l1q = std::log1p(-q);
  double top = -std::numeric_limits<double>::infinity();
  std::vector<double> terms(static_cast<std::size_t>(order) + 1);
  for (int k = 0; k <= order; ++k) {
    const double binom = std::lgamma(a + 1) - std::lgamma(k + 1.0) - std::lgamma(a - k + 1);
    const double t = binom + (a - k) * l1q + k * lq +
                     (static_cast<double>(k) * k - k) / (2 * sigma * sigma);
    terms[static_cast<std::size_t>(k)] = t;
    top = std::max(top, t);
  }
  double sum = 0;
  for (double t : terms) sum += std::exp(t - top);
  return (top + std::log(sum)) / (a - 1);
}

Epsilon epsilon(double q, double sigma, std::int64_t steps, double delta) {
  Epsilon best{std::numeric_limits<double>::infinity(), kMinOrder};
  for (int a = kMinOrder; a <= kMaxOrder; ++a) {
    const double e = static_cast<double>(steps) * rdp_sampled_gaussian(q, sigma, a) +
                     std::log(1 / delta) / (a - 1);
    if (e < best.epsilon) best = {e, a};
  }
  return best;
}

double calibrate_sigma(double q, std::int64_t steps, double delta, double target) {
  double hi = 1.0;
  while (epsilon(q, hi, steps, delta).epsilon > target) {
    hi *= 2;
    require_usage(hi <= 1e4, fmt::format("no noise multiplier up to 1e4 gives epsilon <= {} for q = "
                                         "{}, {} steps, delta = {}: raise the target or sample "
                                         "fewer clients",
                                         target, q, steps, delta));
  }
  double lo = 0;
  while (hi - lo > 1e-6 * hi) {
    const double mid = (lo + hi) / 2;
    (epsilon(q, mid, steps, delta).epsilon > target ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace cohort::privacy
