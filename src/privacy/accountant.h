// The privacy accountant (docs/algorithms.md §6): Rényi differential privacy of the sampled
// Gaussian mechanism (Mironov, Talwar, Zhang 2019) at integer orders, composed over steps and
// converted to (epsilon, delta).
//
// Note [RDP accountant]
// For sampling rate q, noise multiplier sigma and an integer order a >= 2,
//   RDP(a) = 1/(a - 1) log sum_{k=0}^{a} C(a, k) (1 - q)^(a - k) q^k exp((k^2 - k) / (2 sigma^2)),
// evaluated in log space (log-sum-exp over k, lgamma for the binomials), so orders up to 256
// and tiny q neither overflow nor lose the k = 0 and k = 1 terms that dominate for small q. T
// steps compose to T RDP(a), and
//   epsilon(delta) = min over a = 2..256 of T RDP(a) + log(1/delta) / (a - 1),
// the classic conversion, whose minimizing order is reported with it. q = 0 leaks nothing
// (epsilon = log(1/delta)/255 at the largest order, the conversion's own floor); sigma = 0 leaks
// everything (epsilon = infinity). calibrate_sigma solves for the smallest sigma that meets a
// target epsilon by bisection on sigma (epsilon falls as sigma grows).
#pragma once

#include <cstdint>

namespace cohort::privacy {

inline constexpr int kMinOrder = 2, kMaxOrder = 256;

// RDP of one step at order a (a >= 2).
double rdp_sampled_gaussian(double q, double sigma, int order);

struct Epsilon {
  double epsilon = 0;
  int order = 0;  // the order that attains the minimum
};
// epsilon(delta) after `steps` compositions of the sampled Gaussian mechanism.
Epsilon epsilon(double q, double sigma, std::int64_t steps, double delta);
// The smallest noise multiplier (to 1e-6 relative) whose epsilon after `steps` steps is at most
// target; throws UsageError when even sigma = 1e4 does not reach it.
double calibrate_sigma(double q, std::int64_t steps, double delta, double target);

}  // namespace cohort::privacy
