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

// ---- DP-FedAvg and Poisson sampling (Note [DP-FedAvg], Note [Poisson sampling]) -------------

#include <filesystem>
#include <numeric>
#include <unistd.h>

#include "algo/run_schema.h"
#include "algo/runner.h"
#include "algo/sampling.h"
#include "app/hdf5_input.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "core/layers.h"
#include "core/rng.h"
#include "privacy/dp.h"

namespace {

std::string dp_h5(const std::string& name) { return test::temp_h5("dp", name); }

algo::RunOutcome dp_run(const std::string& text, const std::vector<std::string>& extra,
                        const std::string& path) {
  return test::run_config_text(text, extra, path);
}

// Four 1-D quadratic clients, full gradients, Poisson sampling with q = 1/2.
const std::string kDp =
    "seed: 9\n"
    "data: {name: quadratic, dim: 1, h: [1, 2, 4, 1], a: [-2, 1, 3, 0], x0: 0}\n"
    "clients: {num_clients: 4, fraction: 0.5, sampling: poisson}\n"
    "algorithm: {name: fedavg, batch_size: 0, local_lr: 0.1, local_steps: 3}\n"
    "privacy: {name: dp_fedavg, clip: 1.0e30, noise_multiplier: 0}\n"
    "eval: {every: 1}\n";
constexpr double kDpH[4] = {1, 2, 4, 1}, kDpA[4] = {-2, 1, 3, 0};

}  // namespace

TEST_CASE("privacy: Poisson sampling is keyed and samples each client with probability q",
          "[privacy]") {
  const int n = 2000;
  const double q = 0.05;
  std::vector<int> hits(n, 0);
  double total = 0;
  const int rounds = 400;
  for (int t = 0; t < rounds; ++t) {
    const auto s = algo::sample_poisson(3, static_cast<std::uint32_t>(t), n, q);
    REQUIRE(std::is_sorted(s.begin(), s.end()));
    REQUIRE(std::adjacent_find(s.begin(), s.end()) == s.end());
    REQUIRE(s == algo::sample_poisson(3, static_cast<std::uint32_t>(t), n, q));
    total += static_cast<double>(s.size());
    for (int c : s) ++hits[static_cast<std::size_t>(c)];
    REQUIRE(static_cast<int>(s.size()) <= algo::poisson_bound(n, q));
  }
  // The mean count is N q within 5 standard deviations of the mean over the rounds.
  const double sd = std::sqrt(n * q * (1 - q) / rounds);
  REQUIRE(std::fabs(total / rounds - n * q) < 5 * sd);
  // Every client's inclusion count is Binomial(rounds, q): the population's mean and spread.
  const double mean = std::accumulate(hits.begin(), hits.end(), 0.0) / n;
  double var = 0;
  for (int h : hits) var += (h - mean) * (h - mean) / n;
  REQUIRE(std::fabs(var - rounds * q * (1 - q)) < 0.15 * rounds * q * (1 - q));
  REQUIRE(algo::sample_poisson(3, 0, 10, 1.0) == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  REQUIRE(algo::poisson_bound(100, 0.1) == 100 * 0.1 + std::ceil(12 * 3) + 12);
  REQUIRE(algo::poisson_bound(10, 0.9) == 10);
}

TEST_CASE("privacy: dp_fedavg follows the hand computation: fixed denominator, clipping",
          "[privacy]") {
  // x <- x - sum_{i in S_t} clip_C(u_i) / (q N), S_t the round's Poisson sample.
  for (const double clip : {1.0e30, 0.3}) {
    double x = 0;
    const std::string path = dp_h5("hand");
    const auto got = dp_run("rounds: 6\n" + kDp, {"privacy.clip=" + std::to_string(clip)}, path);
    REQUIRE(got.status == "completed");
    for (std::uint32_t t = 0; t < 6; ++t) {
      const auto s = algo::sample_poisson(9, t, 4, 0.5);
      double sum = 0;
      for (int c : s) {
        double y = x;
        for (int k = 0; k < 3; ++k) y -= 0.1 * kDpH[c] * (y - kDpA[c]);
        const double u = x - y;
        sum += std::fabs(u) > clip ? clip * (u > 0 ? 1 : -1) : u;
      }
      x -= sum / 2.0;
    }
    INFO("clip " << clip << ": expected " << x << " got " << got.final_model[0]);
    REQUIRE(std::fabs(got.final_model[0] - x) < 1e-6);
    std::filesystem::remove(path);
  }
}

TEST_CASE("privacy: the server's noise has standard deviation sigma C / (q N); epsilon and the "
          "budget",
          "[privacy]") {
  // Every client starts at its optimum (a = x0), so the clipped updates are exactly 0 and one
  // round moves x by the noise alone: d = 20000 draws of N(0, (sigma C / q N)^2).
  std::string ones, zeros;
  for (int c = 0; c < 50; ++c) {
    ones += c ? ", 1" : "1";
    zeros += c ? ", 0" : "0";
  }
  const std::string text =
      "seed: 2\n"
      "rounds: 1\n"
      "data: {name: quadratic, dim: 20000, h: [" + ones + "], a: [" + zeros + "], x0: 0}\n"
      "clients: {num_clients: 50, fraction: 0.2, sampling: poisson}\n"
      "algorithm: {name: fedavg, batch_size: 0, local_lr: 0.1, local_steps: 1}\n"
      "privacy: {name: dp_fedavg, clip: 2, noise_multiplier: 1.5}\n"
      "eval: {every: 1}\n";
  const std::string path = dp_h5("noise");
  const auto got = dp_run(text, {}, path);
  REQUIRE(got.status == "completed");
  double ss = 0, sum = 0;
  for (float v : got.final_model) {
    ss += static_cast<double>(v) * v;
    sum += v;
  }
  const double n = static_cast<double>(got.final_model.size());
  const double want = 1.5 * 2 / (0.2 * 50);  // 0.3
  // The sample variance's relative standard error is sqrt(2/n) ~ 1%: allow 5 of them.
  REQUIRE(std::sqrt(ss / n) == Approx(want).epsilon(5 * std::sqrt(2 / n)));
  REQUIRE(std::fabs(sum / n) < 5 * want / std::sqrt(n));
  const auto eps = read_hdf5_floats(path, "/rounds/epsilon", 1, 1).data;
  REQUIRE(eps[0] == Approx(privacy::epsilon(0.2, 1.5, 1, 1e-5).epsilon).epsilon(1e-6));
  std::filesystem::remove(path);

  // Distributed noise: each of the m sampled clients adds N(0, sigma^2 C^2 / m), so the sum
  // carries the same N(0, sigma^2 C^2) and x moves with the same spread; a share of the wrong
  // size (sigma C each, or divided by m instead of sqrt(m)) fails this.
  const auto dist = dp_run(text, {"privacy.noise=distributed"}, path);
  REQUIRE(dist.status == "completed");
  double dss = 0;
  for (float v : dist.final_model) dss += static_cast<double>(v) * v;
  REQUIRE(std::sqrt(dss / n) == Approx(want).epsilon(5 * std::sqrt(2 / n)));
  REQUIRE(dist.final_model != got.final_model);  // the clients' own draws, not the server's
  std::filesystem::remove(path);

  // A budget below the next round's epsilon stops the run before that round.
  const double e3 = privacy::epsilon(0.5, 1.0, 3, 1e-5).epsilon;
  const double e4 = privacy::epsilon(0.5, 1.0, 4, 1e-5).epsilon;
  const auto stopped =
      dp_run("rounds: 10\n" + kDp,
             {"privacy.clip=1", "privacy.noise_multiplier=1",
              "privacy.target_epsilon=" + std::to_string((e3 + e4) / 2)},
             dp_h5("budget"));
  REQUIRE(stopped.status == "budget_exhausted");
  REQUIRE(stopped.rounds_done == 3);
  std::filesystem::remove(dp_h5("budget"));
  // calibrate: the configured rounds end within the target.
  const auto calibrated = dp_run("rounds: 10\n" + kDp,
                                 {"privacy.clip=1", "privacy.target_epsilon=3", "privacy.calibrate=true"},
                                 dp_h5("calibrated"));
  REQUIRE(calibrated.status == "completed");
  const auto e = read_hdf5_floats(dp_h5("calibrated"), "/rounds/epsilon", 1, 1).data;
  REQUIRE(e.back() <= 3.0f);
  REQUIRE(e.back() > 2.99f);
  std::filesystem::remove(dp_h5("calibrated"));
}

TEST_CASE("privacy: dp_fedavg clipping by hand: flat to C, per layer to C / sqrt(L)", "[privacy]") {
  // Two layers: a = (3, 4) of norm 5, b = (0, 6, 8) of norm 10; the whole vector has norm sqrt(125).
  const std::vector<LayerView> layers = {LayerView{"a", 0, 2, 1}, LayerView{"b", 2, 3, 1}};
  const double c = 2 * std::sqrt(2.0);  // C / sqrt(L) = 2
  std::vector<float> u = {3, 4, 0, 6, 8};
  privacy::clip_update(u.data(), layers, c, true);
  const float per_layer[5] = {1.2f, 1.6f, 0.0f, 1.2f, 1.6f};
  for (int k = 0; k < 5; ++k) CHECK(u[static_cast<std::size_t>(k)] == Approx(per_layer[k]).epsilon(1e-6));
  u = {3, 4, 0, 6, 8};
  privacy::clip_update(u.data(), layers, c, false);
  const double f = c / std::sqrt(125.0);
  const float flat[5] = {3, 4, 0, 6, 8};
  for (int k = 0; k < 5; ++k) CHECK(u[static_cast<std::size_t>(k)] == Approx(f * flat[k]).epsilon(1e-6));
  // A layer already inside its bound is left alone, per layer as flat.
  u = {0.3f, 0.4f, 0, 0.6f, 0.8f};
  privacy::clip_update(u.data(), layers, c, true);
  CHECK(u[0] == 0.3f);
  CHECK(u[4] == 0.8f);
}
