// The algorithms against closed forms (docs/algorithms.md §1, §7).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "algo/run_schema.h"
#include "algo/runner.h"
#include "algo/sampling.h"
#include "algo/server_optimizer.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "core/rng.h"

using namespace cohort;

namespace {

std::string tmp_h5(const std::string& name) {  // per process: runs refuse an existing file
  return (std::filesystem::temp_directory_path() /
          ("cohort_test_" + std::to_string(getpid()) + "_" + name + ".h5"))
      .string();
}

// Two 1-D quadratic clients h = (1, 10), a = (-1, 1), eta = 0.05, full participation and full
// gradients (the client-drift case).
std::vector<float> run_two_quadratics(const std::string& extra, const std::string& tag) {
  const std::string text =
      "rounds: 200\n"
      "data: {name: quadratic, dim: 1, h: [1, 10], a: [-1, 1], x0: 0}\n"
      "clients: {num_clients: 2}\n"
      "algorithm: {name: fedavg, batch_size: 0, local_lr: 0.05}\n"
      "eval: {every: 0}\n"
      "output: {path: " + tmp_h5(tag) + ", progress_every: 0, save_model: false}\n";
  const Config cfg = Config::from_text(text, {extra}, algo::run_schema());
  auto comm = comm::make_self_communicator();
  const auto outcome = algo::run_experiment(cfg, *comm);
  std::filesystem::remove(tmp_h5(tag));
  REQUIRE(outcome.status == "completed");
  return outcome.final_model;
}

}  // namespace

TEST_CASE("algo: fedavg with K local steps stops at the drifted fixed point", "[algo]") {
  // Fixed point of FedAvg with full gradients: sum_i a_i (1 - rho_i) / sum_i (1 - rho_i),
  // rho_i = (1 - eta h_i)^K.
  const double h[2] = {1, 10}, a[2] = {-1, 1}, eta = 0.05;
  const int k = 10;
  double num = 0, den = 0;
  for (int i = 0; i < 2; ++i) {
    const double rho = std::pow(1 - eta * h[i], k);
    num += a[i] * (1 - rho);
    den += 1 - rho;
  }
  const auto x = run_two_quadratics("algorithm.local_steps=10", "k10");
  INFO("expected " << num / den << " got " << x[0]);
  REQUIRE(std::fabs(x[0] - num / den) < 1e-6);
  // ... which is not the optimum: client drift.
  REQUIRE(std::fabs(x[0] - 9.0 / 11.0) > 0.3);
}

TEST_CASE("algo: fedavg with one local step reaches the true optimum", "[algo]") {
  const auto x = run_two_quadratics("algorithm.local_steps=1", "k1");
  INFO("got " << x[0]);
  REQUIRE(std::fabs(x[0] - 9.0 / 11.0) < 1e-6);  // sum h_i a_i / sum h_i
}

TEST_CASE("algo: sgd on quadratics equals gradient descent on the mean objective", "[algo]") {
  // One round of sgd from x0 = 0 with lr 0.1: g = mean(h_i (0 - a_i)) = (1 - 10)/2 = -4.5,
  // so x1 = 0.45; check the closed form after 3 rounds: x_{t+1} = x_t - 0.1 (5.5 x_t - 4.5).
  const std::string text =
      "rounds: 3\n"
      "data: {name: quadratic, dim: 1, h: [1, 10], a: [-1, 1], x0: 0}\n"
      "clients: {num_clients: 2}\n"
      "algorithm: {name: sgd, batch_size: 0}\n"
      "server_optimizer: {name: sgd, lr: 0.1}\n"
      "eval: {every: 0}\n"
      "output: {path: " + tmp_h5("sgd") + ", progress_every: 0}\n";
  auto comm = comm::make_self_communicator();
  const auto out = algo::run_experiment(Config::from_text(text, {}, algo::run_schema()), *comm);
  std::filesystem::remove(tmp_h5("sgd"));
  double x = 0;
  for (int t = 0; t < 3; ++t) x = x - 0.1 * (5.5 * x - 4.5);
  REQUIRE(out.final_model[0] == Approx(x).epsilon(1e-6));
}

TEST_CASE("algo: weighted mean uses sample counts", "[algo]") {
  // Quadratic clients hold one sample each, so weighted and unweighted agree exactly.
  const auto a = run_two_quadratics("aggregator.weighted=true", "w1");
  const auto b = run_two_quadratics("aggregator.weighted=false", "w0");
  REQUIRE(a[0] == b[0]);
}

// docs/algorithms.md §1.
TEST_CASE("algo: server optimizers follow the definitions on a fixed gradient sequence", "[algo]") {
  const float g_seq[3] = {1.0f, -2.0f, 0.5f};
  auto run = [&](algo::ServerOptimizerOptions o) {
    auto opt = algo::make_server_optimizer(o);
    float x = 0;
    for (float g : g_seq) opt->step(&x, &g, 1, o.lr);
    return static_cast<double>(x);
  };
  const double lr = 0.1, beta = 0.9;
  algo::ServerOptimizerOptions o;
  o.lr = lr;
  SECTION("sgd") {
    o.name = "sgd";
    REQUIRE(run(o) == Approx(-lr * (1 - 2 + 0.5)).epsilon(1e-6));
  }
  SECTION("momentum ema and heavy ball differ by 1/(1-beta) in the step sizes") {
    o.name = "momentum";
    o.beta = beta;
    double m = 0, x = 0;
    for (double g : {1.0, -2.0, 0.5}) {
      m = (1 - beta) * g + beta * m;
      x -= lr * m;
    }
    REQUIRE(run(o) == Approx(x).epsilon(1e-6));
    o.heavy_ball = true;
    m = 0;
    x = 0;
    for (double g : {1.0, -2.0, 0.5}) {
      m = beta * m + g;
      x -= lr * m;
    }
    REQUIRE(run(o) == Approx(x).epsilon(1e-6));
  }
  SECTION("nesterov") {
    o.name = "nesterov";
    o.beta = beta;
    double m = 0, x = 0;
    for (double g : {1.0, -2.0, 0.5}) {
      m = beta * m + g;
      x -= lr * (g + beta * m);
    }
    REQUIRE(run(o) == Approx(x).epsilon(1e-6));
  }
  SECTION("adam with and without bias correction, and yogi") {
    for (bool bc : {false, true}) {
      o.name = "adam";
      o.bias_correction = bc;
      double m = 0, v = 0, x = 0;
      int t = 0;
      for (double g : {1.0, -2.0, 0.5}) {
        ++t;
        m = o.beta1 * m + (1 - o.beta1) * g;
        v = o.beta2 * v + (1 - o.beta2) * g * g;
        const double c1 = bc ? 1 - std::pow(o.beta1, t) : 1, c2 = bc ? 1 - std::pow(o.beta2, t) : 1;
        x -= lr * (m / c1) / (std::sqrt(v / c2) + o.eps);
      }
      REQUIRE(run(o) == Approx(x).epsilon(1e-5));
    }
    o.name = "yogi";
    o.bias_correction = false;
    double m = 0, v = 0, x = 0;
    for (double g : {1.0, -2.0, 0.5}) {
      m = o.beta1 * m + (1 - o.beta1) * g;
      v = v - (1 - o.beta2) * g * g * (v - g * g > 0 ? 1 : -1);
      x -= lr * m / (std::sqrt(v) + o.eps);
    }
    REQUIRE(run(o) == Approx(x).epsilon(1e-5));
  }
}

TEST_CASE("algo: client sampling is keyed, sorted, distinct and uniform", "[algo]") {
  const int n = 50, m = 10, rounds = 4000;
  std::vector<int> hits(n, 0);
  for (int t = 0; t < rounds; ++t) {
    const auto s = algo::sample_clients(7, static_cast<std::uint32_t>(t), n, m);
    REQUIRE(s.size() == static_cast<std::size_t>(m));
    REQUIRE(std::is_sorted(s.begin(), s.end()));
    REQUIRE(std::set<int>(s.begin(), s.end()).size() == s.size());
    for (int c : s) ++hits[c];
  }
  REQUIRE(algo::sample_clients(7, 3, n, m) == algo::sample_clients(7, 3, n, m));
  REQUIRE(algo::sample_clients(7, 3, n, m) != algo::sample_clients(8, 3, n, m));
  // Each client is picked with probability m/n per round: binomial(rounds, 0.2), sd = 25.3.
  const double p = double(m) / n, mean = rounds * p, sd = std::sqrt(rounds * p * (1 - p));
  for (int c = 0; c < n; ++c) {
    INFO("client " << c << " picked " << hits[c] << " times, expected " << mean);
    REQUIRE(std::fabs(hits[c] - mean) < 5 * sd);
  }
}

TEST_CASE("algo: client blocks cover every client once for any rank count", "[algo]") {
  for (int n : {1, 7, 10, 1000})
    for (int p : {1, 2, 3, 4, 16}) {
      int next = 0;
      for (int r = 0; r < p; ++r) {
        const auto b = algo::client_block(n, r, p);
        REQUIRE(b.begin == next);
        REQUIRE(b.end >= b.begin);
        next = b.end;
      }
      REQUIRE(next == n);
    }
}

// The dense form of Rng::choose_sorted: shuffle all of 0..n-1 for k steps, keep the first k.
static std::vector<int> choose_sorted_dense(Rng rng, int n, int k) {
  std::vector<int> ids(static_cast<std::size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  for (int i = 0; i < k; ++i) {
    const int j = i + static_cast<int>(rng.below(static_cast<std::uint64_t>(n - i)));
    std::swap(ids[static_cast<std::size_t>(i)], ids[static_cast<std::size_t>(j)]);
  }
  ids.resize(static_cast<std::size_t>(k));
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST_CASE("algo: sampling in O(k) draws exactly what the dense shuffle draws", "[algo]") {
  // Every (n, k) shape, including k = 1, k = n - 1, k = n and tiny n, and many keys: the sparse
  // shuffle (Note [Population scale]) must give the same clients, so runs keep their results.
  for (int n : {1, 2, 3, 7, 50, 1000, 100003})
    for (int k : {1, 2, n / 3, n / 2, n - 1, n}) {
      if (k < 1 || k > n) continue;
      for (std::uint32_t round = 0; round < 20; ++round) {
        CAPTURE(n, k, round);
        const Rng rng(11, round, kGlobalClient, Purpose::kClientSampling);
        Rng sparse = rng;
        REQUIRE(sparse.choose_sorted(n, k) == choose_sorted_dense(rng, n, k));
      }
    }
  // A population of 10^7 with 10^4 a round: the sample is distinct and in range.
  const auto s = algo::sample_clients(3, 9, 10'000'000, 10'000);
  REQUIRE(s.size() == 10'000u);
  REQUIRE(std::adjacent_find(s.begin(), s.end()) == s.end());
  REQUIRE(s.front() >= 0);
  REQUIRE(s.back() < 10'000'000);
}
