// The RDP accountant against independent computations (docs/algorithms.md §6).
#include <catch2/catch.hpp>

#include <cmath>

#include "privacy/accountant.h"
#include "test_support.h"

using namespace cohort;

namespace {

// The definition summed directly in long double with exact integer binomials (no log space):
// fine for the moderate orders and rates used here.
long double rdp_direct(long double q, long double sigma, int a) {
  long double sum = 0, binom = 1;  // C(a, 0)
  for (int k = 0; k <= a; ++k) {
    sum += binom * std::pow(1 - q, static_cast<long double>(a - k)) *
           std::pow(q, static_cast<long double>(k)) *
           std::exp(static_cast<long double>(k * k - k) / (2 * sigma * sigma));
    binom = binom * (a - k) / (k + 1);
  }
  return std::log(sum) / (a - 1);
}

}  // namespace

TEST_CASE("privacy: RDP of the sampled Gaussian equals the direct sum", "[privacy]") {
  for (const double q : {0.001, 0.01, 0.1, 0.5})
    for (const double sigma : {0.8, 1.1, 2.0, 5.0})
      for (const int a : {2, 3, 8, 16, 32}) {
        INFO("q " << q << " sigma " << sigma << " order " << a);
        const long double want = rdp_direct(q, sigma, a);
        REQUIRE(privacy::rdp_sampled_gaussian(q, sigma, a) ==
                Approx(static_cast<double>(want)).epsilon(1e-9));
      }
  // q = 1: the Gaussian mechanism itself, a / (2 sigma^2).
  REQUIRE(privacy::rdp_sampled_gaussian(1.0, 2.0, 7) == Approx(7.0 / 8.0));
  // Order 2 in closed form: log(1 + q^2 (e^(1/sigma^2) - 1)).
  REQUIRE(privacy::rdp_sampled_gaussian(0.05, 1.5, 2) ==
          Approx(std::log1p(0.05 * 0.05 * std::expm1(1 / 2.25))).epsilon(1e-12));
}

TEST_CASE("privacy: epsilon by the classic conversion, the reference example and monotonicity",
          "[privacy]") {
  // Abadi et al.'s MNIST setting: q = 256/60000, sigma = 1.1, T = 14063, delta = 1e-5 -> 3.01.
  const auto e = privacy::epsilon(256.0 / 60000, 1.1, 14063, 1e-5);
  REQUIRE(e.epsilon == Approx(3.01).margin(0.01));
  // The minimum over orders 2..256 of T RDP(a) + log(1/delta)/(a - 1), recomputed here.
  double best = INFINITY;
  int order = 0;
  for (int a = 2; a <= 256; ++a) {
    const double v = 14063 * privacy::rdp_sampled_gaussian(256.0 / 60000, 1.1, a) +
                     std::log(1e5) / (a - 1);
    if (v < best) {
      best = v;
      order = a;
    }
  }
  REQUIRE(e.epsilon == best);
  REQUIRE(e.order == order);
  // More steps cost more; more noise costs less; a larger delta buys a smaller epsilon.
  double last = 0;
  for (const long long t : {1LL, 10LL, 100LL, 1000LL}) {
    const double v = privacy::epsilon(0.01, 1.0, t, 1e-5).epsilon;
    REQUIRE(v > last);
    last = v;
  }
  last = INFINITY;
  for (const double s : {0.7, 1.0, 2.0, 4.0}) {
    const double v = privacy::epsilon(0.01, s, 1000, 1e-5).epsilon;
    REQUIRE(v < last);
    last = v;
  }
  REQUIRE(privacy::epsilon(0.01, 1, 100, 1e-3).epsilon < privacy::epsilon(0.01, 1, 100, 1e-6).epsilon);
  REQUIRE(std::isinf(privacy::epsilon(0.01, 0.0, 10, 1e-5).epsilon));
}

TEST_CASE("privacy: calibration finds the smallest sigma for a target epsilon", "[privacy]") {
  for (const double target : {1.0, 2.0, 8.0}) {
    const double sigma = privacy::calibrate_sigma(0.01, 1000, 1e-5, target);
    REQUIRE(privacy::epsilon(0.01, sigma, 1000, 1e-5).epsilon <= target);
    REQUIRE(privacy::epsilon(0.01, sigma * (1 - 1e-4), 1000, 1e-5).epsilon > target);
  }
  REQUIRE(test::usage_error_of([] { privacy::calibrate_sigma(1.0, 100000, 1e-5, 1e-3); })
              .find("no noise multiplier") != std::string::npos);
}
