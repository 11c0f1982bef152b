// The algorithms against closed forms (docs/algorithms.md §1, §7).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "algo/algorithm.h"
#include "algo/quadratic.h"
#include "algo/run_schema.h"
#include "algo/runner.h"
#include "algo/sampling.h"
#include "algo/server_optimizer.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "core/rng.h"
#include "test_support.h"

using namespace cohort;

namespace {

std::string tmp_h5(const std::string& name) {  // per process: runs refuse an existing file
  return (std::filesystem::temp_directory_path() /
          ("cohort_test_" + std::to_string(getpid()) + "_" + name + ".h5"))
      .string();
}

// Two 1-D quadratic clients h = (1, 10), a = (-1, 1), eta = 0.05, full participation and full
// gradients (the client-drift case).
std::vector<float> run_drift(const std::vector<std::string>& extra, const std::string& tag) {
  const std::string text =
      "rounds: 200\n"
      "data: {name: quadratic, dim: 1, h: [1, 10], a: [-1, 1], x0: 0}\n"
      "clients: {num_clients: 2}\n"
      "algorithm: {name: fedavg, batch_size: 0, local_lr: 0.05}\n"
      "eval: {every: 0}\n"
      "output: {path: " + tmp_h5(tag) + ", progress_every: 0, save_model: false}\n";
  const Config cfg = Config::from_text(text, extra, algo::run_schema());
  auto comm = comm::make_self_communicator();
  const auto outcome = algo::run_experiment(cfg, *comm);
  std::filesystem::remove(tmp_h5(tag));
  REQUIRE(outcome.status == "completed");
  return outcome.final_model;
}
std::vector<float> run_two_quadratics(const std::string& extra, const std::string& tag) {
  return run_drift({extra}, tag);
}

// The drift case's constants (configs/quadratic_drift.yaml).
constexpr double kH[2] = {1, 10}, kA[2] = {-1, 1}, kEta = 0.05;
constexpr int kSteps = 10;

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
  REQUIRE(num / den == Approx(0.426884).margin(1e-6));  // configs/quadratic_drift.yaml
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

// docs/algorithms.md §1.1 (fedprox).
TEST_CASE("algo: fedprox with mu = 0 is fedavg bit for bit", "[algo][drift]") {
  for (const char* k : {"algorithm.local_steps=10", "algorithm.local_steps=3"}) {
    const auto a = run_drift({k, "rounds=7"}, "prox_avg");
    const auto b = run_drift({k, "rounds=7", "algorithm.name=fedprox", "algorithm.mu=0"}, "prox0");
    REQUIRE(a[0] == b[0]);
  }
}

TEST_CASE("algo: fedprox's first round and fixed point by hand", "[algo][drift]") {
  const double mu = 0.5;
  const std::vector<std::string> prox = {"algorithm.name=fedprox", "algorithm.mu=0.5",
                                         "algorithm.local_steps=10"};
  // Round 1 from x = 0: y <- y - eta (h_i (y - a_i) + mu (y - x)), ten steps, x1 = mean y_K.
  double x1 = 0;
  for (int i = 0; i < 2; ++i) {
    double y = 0;
    for (int k = 0; k < kSteps; ++k) y -= kEta * (kH[i] * (y - kA[i]) + mu * (y - 0.0));
    x1 += y / 2;
  }
  auto with = [&](std::string extra) {
    auto v = prox;
    v.push_back(std::move(extra));
    return v;
  };
  const auto r1 = run_drift(with("rounds=1"), "prox1");
  INFO("round 1: expected " << x1 << " got " << r1[0]);
  REQUIRE(std::fabs(r1[0] - x1) < 1e-6);
  // Fixed point: y_K - y*_i = q_i^K (x - y*_i) with q_i = 1 - eta (h_i + mu) and
  // y*_i = (h_i a_i + mu x) / (h_i + mu), so x - y_K = (1 - q_i^K) h_i (x - a_i) / (h_i + mu)
  // and the mean vanishes at sum w_i a_i / sum w_i, w_i = (1 - q_i^K) h_i / (h_i + mu).
  double num = 0, den = 0;
  for (int i = 0; i < 2; ++i) {
    const double w = (1 - std::pow(1 - kEta * (kH[i] + mu), kSteps)) * kH[i] / (kH[i] + mu);
    num += w * kA[i];
    den += w;
  }
  const auto xf = run_drift(with("rounds=300"), "prox300");
  INFO("fixed point: expected " << num / den << " got " << xf[0]);
  REQUIRE(std::fabs(xf[0] - num / den) < 1e-6);
  // The proximal term moves the fixed point, but not to the optimum: it slows drift, it does
  // not remove it.
  REQUIRE(std::fabs(xf[0] - 9.0 / 11.0) > 0.1);
}

// docs/algorithms.md §1.1 (scaffold): the drift case by hand in double precision, both options.
// Returns x after `rounds` rounds with full participation (|S| = N = 2, eta_g = 1).
double scaffold_by_hand(bool option_one, int rounds) {
  double x = 0, c = 0, ci[2] = {0, 0};
  for (int t = 0; t < rounds; ++t) {
    double step = 0, dc = 0;
    for (int i = 0; i < 2; ++i) {
      double y = x;
      for (int k = 0; k < kSteps; ++k) y -= kEta * (kH[i] * (y - kA[i]) - ci[i] + c);
      const double next = option_one ? kH[i] * (x - kA[i]) : ci[i] - c + (x - y) / (kSteps * kEta);
      step += (x - y) / 2;
      dc += (next - ci[i]) / 2;
      ci[i] = next;
    }
    x -= step;
    c += 2.0 / 2.0 * dc;
  }
  return x;
}

TEST_CASE("algo: scaffold's first round is fedavg's, bit for bit", "[algo][drift]") {
  // c = c_i = 0 before the first round, so its local steps are fedavg's.
  const auto avg = run_drift({"algorithm.local_steps=10", "rounds=1"}, "sc_avg1");
  for (const char* option : {"algorithm.option=I", "algorithm.option=II"}) {
    const auto sc = run_drift(
        {"algorithm.name=scaffold", "algorithm.local_steps=10", "rounds=1", option}, "sc1");
    REQUIRE(sc[0] == avg[0]);
  }
}

TEST_CASE("algo: scaffold follows the hand-computed rounds and removes the drift",
          "[algo][drift]") {
  for (const bool one : {true, false}) {
    const std::string option = one ? "algorithm.option=I" : "algorithm.option=II";
    for (const int rounds : {2, 3, 5}) {
      const auto x = run_drift({"algorithm.name=scaffold", "algorithm.local_steps=10", option,
                                "rounds=" + std::to_string(rounds)},
                               "sc_hand");
      const double want = scaffold_by_hand(one, rounds);
      INFO(option << " round " << rounds << ": expected " << want << " got " << x[0]);
      REQUIRE(std::fabs(x[0] - want) < 1e-5);
    }
    // The rounds differ from fedavg's from the second on (so the control is used).
    REQUIRE(std::fabs(scaffold_by_hand(one, 2) -
                      run_drift({"algorithm.local_steps=10", "rounds=2"}, "sc_avg2")[0]) > 0.01);
    const auto x = run_drift(
        {"algorithm.name=scaffold", "algorithm.local_steps=10", option, "rounds=300"}, "sc300");
    INFO(option << ": expected 9/11 got " << x[0]);
    REQUIRE(std::fabs(x[0] - 9.0 / 11.0) < 1e-6);
  }
}

TEST_CASE("algo: a message of two parts repeats the layers, shifted and prefixed", "[algo]") {
  // Note [Message parts]: the exchange sees scaffold's (x - y_K, dc) as 2 d values.
  const std::vector<LayerView> layers = {{"w", 0, 2, 3}, {"b", 6, 2, 1}};
  const auto parts = algo::message_layers(layers, {"", "dc"});
  REQUIRE(parts.size() == 4);
  CHECK(parts[0].name == "w");
  CHECK(parts[1].name == "b");
  CHECK(parts[2].name == "dc/w");
  CHECK(parts[3].name == "dc/b");
  CHECK(parts[0].offset == 0);
  CHECK(parts[1].offset == 6);
  CHECK(parts[2].offset == 8);
  CHECK(parts[3].offset == 14);
  CHECK(parts[3].rows == 2);
  CHECK(parts[3].cols == 1);
  CHECK(algo::message_layers(layers, {""})[1].offset == 6);
}

// docs/algorithms.md §1.1 (mime, mimelite): the drift case by hand in double precision. c is
// the mean full gradient at x; the local steps use (1 - beta) g + beta m with m frozen; then
// x <- x - mean(x - y_K) and m <- (1 - beta) c + beta m.
double mime_by_hand(bool lite, double beta, int rounds, int steps = kSteps) {
  double x = 0, m = 0;
  for (int t = 0; t < rounds; ++t) {
    double c = 0, step = 0;
    for (int i = 0; i < 2; ++i) c += kH[i] * (x - kA[i]) / 2;
    for (int i = 0; i < 2; ++i) {
      double y = x;
      for (int k = 0; k < steps; ++k) {
        const double g = lite ? kH[i] * (y - kA[i]) : kH[i] * (y - kA[i]) - kH[i] * (x - kA[i]) + c;
        y -= kEta * ((1 - beta) * g + beta * m);
      }
      step += (x - y) / 2;
    }
    x -= step;
    m = (1 - beta) * c + beta * m;
  }
  return x;
}

TEST_CASE("algo: mime and mimelite follow the hand-computed rounds", "[algo][drift]") {
  for (const char* name : {"mime", "mimelite"}) {
    const bool lite = std::string(name) == "mimelite";
    for (const int rounds : {1, 2, 3, 6}) {
      const auto x = run_drift({std::string("algorithm.name=") + name, "algorithm.local_steps=10",
                                "algorithm.beta=0.5", "rounds=" + std::to_string(rounds)},
                               "mime_hand");
      const double want = mime_by_hand(lite, 0.5, rounds);
      INFO(name << " round " << rounds << ": expected " << want << " got " << x[0]);
      REQUIRE(std::fabs(x[0] - want) < 1e-5);
    }
  }
}

TEST_CASE("algo: mime removes the drift; mimelite with beta = 0 is fedavg bit for bit",
          "[algo][drift]") {
  for (const char* beta : {"algorithm.beta=0", "algorithm.beta=0.5", "algorithm.beta=0.9"}) {
    const auto x = run_drift(
        {"algorithm.name=mime", "algorithm.local_steps=10", beta, "rounds=400"}, "mime400");
    INFO(beta << ": expected 9/11 got " << x[0]);
    REQUIRE(std::fabs(x[0] - 9.0 / 11.0) < 1e-6);
  }
  for (const char* k : {"algorithm.local_steps=10", "algorithm.local_steps=3"}) {
    const auto avg = run_drift({k, "rounds=9"}, "lite_avg");
    const auto lite =
        run_drift({k, "rounds=9", "algorithm.name=mimelite", "algorithm.beta=0"}, "lite0");
    REQUIRE(lite[0] == avg[0]);
  }
  // mimelite keeps a drift of its own (it never sees c in its steps): beta = 0.5 stops short.
  const auto lite = run_drift(
      {"algorithm.name=mimelite", "algorithm.local_steps=10", "algorithm.beta=0.5", "rounds=300"},
      "lite300");
  REQUIRE(std::fabs(lite[0] - mime_by_hand(true, 0.5, 300)) < 1e-5);
  REQUIRE(std::fabs(lite[0] - 9.0 / 11.0) > 0.05);
}

TEST_CASE("algo: mime with one local step is server-only sgd with EMA server momentum",
          "[algo][drift]") {
  // With K = 1, mime's only step uses g(x) - g(x) + c = c exactly, so y_1 = x - eta_l v with
  // v = (1 - beta) c + beta m, which is the new m: x <- x - eta_s eta_l m_new. That is sgd's
  // clients (the full gradient at x, mean c) with server_optimizer momentum (EMA form
  // m <- (1 - beta) g + beta m, x <- x - lr m) at lr = eta_s eta_l. The two agree in exact
  // arithmetic; in float32 mime's message x - (x - eta_l v) rounds differently from sgd's
  // lr * m, so they are compared to a relative 1e-5 (the hand computation checks both).
  const double beta = 0.9;
  const auto mime = run_drift(
      {"algorithm.name=mime", "algorithm.local_steps=1", "algorithm.beta=0.9", "rounds=30"},
      "mime_k1");
  const std::string text =
      "rounds: 30\n"
      "data: {name: quadratic, dim: 1, h: [1, 10], a: [-1, 1], x0: 0}\n"
      "clients: {num_clients: 2}\n"
      "algorithm: {name: sgd, batch_size: 0}\n"
      "server_optimizer: {name: momentum, beta: 0.9, lr: 0.05}\n"
      "eval: {every: 0}\n"
      "output: {path: " + tmp_h5("sgd_m") + ", progress_every: 0}\n";
  auto comm = comm::make_self_communicator();
  const auto sgd = algo::run_experiment(Config::from_text(text, {}, algo::run_schema()), *comm);
  std::filesystem::remove(tmp_h5("sgd_m"));
  REQUIRE(sgd.status == "completed");
  const double want = mime_by_hand(false, beta, 30, 1);
  INFO("mime " << mime[0] << " sgd+momentum " << sgd.final_model[0] << " by hand " << want);
  REQUIRE(mime[0] == Approx(sgd.final_model[0]).epsilon(1e-5));
  REQUIRE(mime[0] == Approx(want).epsilon(1e-5));
}

TEST_CASE("quadratic: per-coordinate curvatures and the recorded coordinates of x", "[algo]") {
  // Two 2-D clients, H_1 = diag(1, 4), a_1 = (1, -2); H_2 = diag(9, 2), a_2 = (3, 0), written
  // client after client. Optimum per coordinate: (1*1 + 9*3) / 10 = 2.8, (4*-2 + 2*0) / 6 = -4/3.
  const auto make = [](const std::string& more) {
    const Config cfg = Config::from_text(
        "data: {name: quadratic, dim: 2, h: [1, 4, 9, 2], a: [1, -2, 3, 0]" + more + "}\n"
        "clients: {num_clients: 2}\n",
        {}, algo::run_schema());
    return algo::QuadraticProblem::from_config(cfg);
  };
  auto p = make(", record_x: true");
  REQUIRE(p->optimum().size() == 2);
  CHECK(p->optimum()[0] == Approx(2.8).epsilon(1e-15));
  CHECK(p->optimum()[1] == Approx(-4.0 / 3).epsilon(1e-15));
  // At x = (0, 1): client 1's gradient (1 (0 - 1), 4 (1 + 2)) = (-1, 12), loss (1 + 36) / 2;
  // client 2's (9 (0 - 3), 2 (1 - 0)) = (-27, 2), loss (81 + 2) / 2; their mean 30.
  const float x[2] = {0, 1};
  float g[2];
  Rng rng(0, 0, 0, Purpose::kBatches);
  CHECK(p->loss_grad(0, x, {}, g, rng) == 18.5);
  CHECK(g[0] == -1.0f);
  CHECK(g[1] == 12.0f);
  CHECK(p->loss_grad(1, x, {}, g, rng) == 41.5);
  CHECK(g[0] == -27.0f);
  CHECK(g[1] == 2.0f);
  CHECK(p->objective(x) == 30.0);
  // record_x: dist_to_opt, then the coordinates.
  CHECK(p->extra_metric_names() == std::vector<std::string>{"dist_to_opt", "x_0", "x_1"});
  const auto m = p->extra_metrics(x);
  REQUIRE(m.size() == 3);
  CHECK(m[0] == Approx(std::hypot(2.8, 1 + 4.0 / 3)).epsilon(1e-12));
  CHECK(m[1] == 0.0);
  CHECK(m[2] == 1.0);
  // Without it (the default) only dist_to_opt, as before.
  CHECK(make("")->extra_metric_names() == std::vector<std::string>{"dist_to_opt"});
  CHECK(make("")->extra_metrics(x).size() == 1);
  // One metric per coordinate: a large dim is refused, naming the key.
  CHECK_THAT(cohort::test::usage_error_of([] {
               algo::QuadraticProblem::from_config(Config::from_text(
                   "data: {name: quadratic, dim: 17, record_x: true}\nclients: {num_clients: 2}\n",
                   {}, algo::run_schema()));
             }),
             Catch::Matchers::Contains("data.record_x"));
}

TEST_CASE("quadratic: the 2-D drift case of figure 2, with x recorded", "[algo]") {
  // configs/figure2_*.yaml: H_1 = diag(1, 5), a_1 = (-1, 1); H_2 = diag(5, 1), a_2 = (1.5, -0.5),
  // K = 3 full-gradient steps at eta_l = 0.2, momentum beta = 0.5.
  const auto run = [](const std::string& record, const std::string& algorithm,
                      const std::string& tag) {
    const std::string text =
        "rounds: 40\n"
        "data: {name: quadratic, dim: 2, h: [1, 5, 5, 1], a: [-1, 1, 1.5, -0.5], x0: -1.5, "
        "record_x: " + record + "}\n"
        "clients: {num_clients: 2}\n" + algorithm +
        "eval: {every: 1}\n"
        "output: {path: " + tmp_h5(tag) + ", progress_every: 0, save_model: false}\n";
    const Config cfg = Config::from_text(text, {}, algo::run_schema());
    auto comm = comm::make_self_communicator();
    const auto outcome = algo::run_experiment(cfg, *comm);
    std::filesystem::remove(tmp_h5(tag));
    REQUIRE(outcome.status == "completed");
    return outcome.final_model;
  };
  const std::string mime =
      "algorithm: {name: mime, beta: 0.5, local_steps: 3, batch_size: 0, local_lr: 0.2}\n";
  const std::string fedavgm =
      "algorithm: {name: fedavg, local_steps: 3, batch_size: 0, local_lr: 0.2}\n"
      "server_optimizer: {name: momentum, beta: 0.5, form: ema, lr: 1}\n";
  const auto with = run("true", mime, "record_x_on"), without = run("false", mime, "record_x_off");
  REQUIRE(with.size() == 2);
  CHECK(with == without);  // recording x changes nothing
  // Mime removes the drift: x* = ((1*-1 + 5*1.5) / 6, (5*1 + 1*-0.5) / 6) = (13/12, 3/4).
  CHECK(with[0] == Approx(13.0 / 12).margin(1e-4));
  CHECK(with[1] == Approx(0.75).margin(1e-4));
  // FedAvg with server momentum stops at its fixed point per coordinate,
  // sum_i (1 - rho_ij) a_ij / sum_i (1 - rho_ij), rho_ij = (1 - eta_l h_ij)^K.
  const auto avgm = run("true", fedavgm, "record_x_avgm");
  const double h[2][2] = {{1, 5}, {5, 1}}, a[2][2] = {{-1, 1}, {1.5, -0.5}};
  for (int j = 0; j < 2; ++j) {
    double num = 0, den = 0;
    for (int i = 0; i < 2; ++i) {
      const double w = 1 - std::pow(1 - 0.2 * h[i][j], 3);
      num += w * a[i][j];
      den += w;
    }
    CHECK(avgm[j] == Approx(num / den).margin(1e-4));
  }
  CHECK(avgm[0] == Approx(0.680108).margin(1e-4));  // far from x*, towards (0.25, 0.25)
}
