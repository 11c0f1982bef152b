// Personalization, fairness and per-client evaluation against hand computations
// (docs/algorithms.md §8).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "algo/personalization.h"
#include "algo/problem.h"
#include "algo/quadratic.h"
#include "algo/round.h"
#include "algo/run_schema.h"
#include "algo/runner.h"
#include "app/hdf5_input.h"
#include "comm/communicator.h"
#include "core/client_store.h"
#include "core/config.h"
#include "test_support.h"

using namespace cohort;

namespace {

std::string tmp_h5(const std::string& name) { return test::temp_h5("pers", name); }

// Runs `text` + overrides at one rank and requires it to complete; the results file stays at
// `path` (removed by the caller).
algo::RunOutcome run_text(const std::string& text, const std::vector<std::string>& extra,
                          const std::string& path) {
  auto outcome = test::run_config_text(text, extra, path);
  REQUIRE(outcome.status == "completed");
  return outcome;
}

// Two 1-D quadratic clients f_i = (h_i/2)(x - a_i)^2 with full gradients (the drift case).
const std::string kDrift =
    "data: {name: quadratic, dim: 1, h: [1, 10], a: [-1, 1], x0: 0}\n"
    "clients: {num_clients: 2}\n"
    "algorithm: {name: fedavg, batch_size: 0, local_lr: 0.05, local_steps: 10}\n"
    "eval: {every: 0}\n";
constexpr double kH[2] = {1, 10}, kA[2] = {-1, 1}, kEta = 0.05;
constexpr int kSteps = 10;

// Fashion-like small classification problem: 6 clients with label skew, local test sets.
const std::string kClasses =
    "seed: 3\n"
    "data: {name: synthetic_fedprox, alpha: 1, beta: 1, dim: 10, classes: 4, min_samples: 30,\n"
    "       client_test_fraction: 0.25}\n"
    "model: {name: logreg}\n"
    "clients: {num_clients: 6, per_round: 3}\n"
    "algorithm: {name: fedavg, local_steps: 4, batch_size: 8, local_lr: 0.1}\n"
    "eval: {every: 1, clients: true}\n";

std::vector<float> read(const std::string& path, const std::string& name) {
  return read_hdf5_floats(path, name, 1, 1).data;
}

}  // namespace

TEST_CASE("pers: q-FFL follows the hand-computed rounds; q = 0 is fedavg bit for bit",
          "[pers]") {
  // x <- x - sum_i F_i^q L u_i / sum_i (q F_i^(q-1) L^2 u_i^2 + L F_i^q), u_i = x - y_i after
  // K full-gradient steps, F_i = f_i(x), L = 1/eta.
  for (const double q : {0.5, 1.0, 3.0}) {
    double x = 0;
    for (int round = 1; round <= 4; ++round) {
      double num = 0, den = 0;
      for (int i = 0; i < 2; ++i) {
        double y = x;
        for (int k = 0; k < kSteps; ++k) y -= kEta * kH[i] * (y - kA[i]);
        const double f = 0.5 * kH[i] * (x - kA[i]) * (x - kA[i]), l = 1 / kEta, u = x - y;
        num += std::pow(f, q) * l * u;
        den += q * std::pow(f, q - 1) * l * l * u * u + l * std::pow(f, q);
      }
      x -= num / den;
      const auto got = run_text("rounds: " + std::to_string(round) + "\n" + kDrift,
                                {"aggregator.name=qffl", "aggregator.q=" + std::to_string(q)},
                                tmp_h5("qffl"));
      std::filesystem::remove(tmp_h5("qffl"));
      INFO("q " << q << " round " << round << ": expected " << x << " got "
                << got.final_model[0]);
      REQUIRE(std::fabs(got.final_model[0] - x) < 1e-6);
    }
  }
  // q = 0: weights 1 and a denominator of one per client, the plain mean.
  const auto avg = run_text("rounds: 7\n" + kDrift, {}, tmp_h5("q_avg"));
  const auto q0 = run_text("rounds: 7\n" + kDrift, {"aggregator.name=qffl", "aggregator.q=0"},
                           tmp_h5("q0"));
  std::filesystem::remove(tmp_h5("q_avg"));
  std::filesystem::remove(tmp_h5("q0"));
  REQUIRE(q0.final_model[0] == avg.final_model[0]);
}

TEST_CASE("pers: q-FFL moves the model towards the client with the larger loss", "[pers]") {
  // The drift case's fedavg fixed point 0.426884 leaves client 1 (a = -1) with loss
  // 0.5 (1.4269)^2 ~ 1.02 and client 2 with 5 (0.5731)^2 ~ 1.64: larger q weighs client 2
  // more, so x moves towards a_2 = 1 and the worse loss shrinks.
  const auto avg = run_text("rounds: 300\n" + kDrift, {}, tmp_h5("q_fp0"));
  const auto q2 =
      run_text("rounds: 300\n" + kDrift, {"aggregator.name=qffl", "aggregator.q=2"}, tmp_h5("q_fp2"));
  std::filesystem::remove(tmp_h5("q_fp0"));
  std::filesystem::remove(tmp_h5("q_fp2"));
  REQUIRE(std::fabs(avg.final_model[0] - 0.426884) < 1e-5);
  REQUIRE(q2.final_model[0] > avg.final_model[0] + 0.01);
  auto worst = [](double x) {
    return std::max(0.5 * kH[0] * (x - kA[0]) * (x - kA[0]), 0.5 * kH[1] * (x - kA[1]) * (x - kA[1]));
  };
  REQUIRE(worst(q2.final_model[0]) < worst(avg.final_model[0]));
}

TEST_CASE("pers: ditto's personal steps follow the definition by hand", "[pers]") {
  // v <- v - eta (h (v - a) + lambda (v - x)), K steps a round, v from the initial model.
  algo::QuadraticProblem problem(2, 1, {1, 10}, {-1, 1}, 0.0, 0.0);
  algo::PersonalizationOptions o;
  o.kind = algo::PersonalizationKind::kDitto;
  o.name = "ditto";
  o.lambda = 0.7;
  algo::FedAvgOptions steps;
  steps.local_steps = 4;
  steps.batch_size = 0;
  steps.local_lr = 0.05;
  steps.schedule = algo::LrSchedule{0.05};
  const std::vector<float> x0 = {0.25f};
  algo::Personalization p(o, steps, 1, x0);
  ClientStore store(0, 2);
  p.declare_state(store);
  REQUIRE(store.slots().size() == 1);
  REQUIRE(store.slots()[0].label == "personal model");
  double v[2] = {0.25, 0.25};
  const float globals[3] = {0.5f, -0.2f, 0.8f};
  for (std::uint32_t round = 0; round < 3; ++round) {
    for (int c = 0; c < 2; ++c) {
      p.update(problem, c, round, &globals[round]);
      for (int k = 0; k < 4; ++k)
        v[c] -= 0.05 * (kH[c] * (v[c] - kA[c]) + 0.7 * (v[c] - globals[round]));
      float got = 0;
      p.personal_model(problem, c, round, &globals[round], &got);
      INFO("round " << round << " client " << c);
      REQUIRE(std::fabs(got - v[c]) < 1e-6);
    }
  }
  // lambda -> infinity pins v to x; lambda = 0 makes it local training.
}

TEST_CASE("pers: local on one client is plain SGD on its data; finetune with K = 0 is the "
          "global model",
          "[pers]") {
  const Config cfg = Config::from_text(kClasses + "clients: {num_clients: 1}\n", {},
                                       algo::run_schema());
  auto problem = algo::make_problem(cfg);
  const std::int64_t d = problem->num_params();
  std::vector<float> x0(static_cast<std::size_t>(d));
  problem->init(x0.data(), 3);
  algo::PersonalizationOptions o;
  o.kind = algo::PersonalizationKind::kLocal;
  o.name = "local";
  const algo::FedAvgOptions steps = algo::FedAvgOptions::steps_from_config(cfg);
  algo::Personalization p(o, steps, 3, x0);
  ClientStore store(0, 1);
  p.declare_state(store);
  // Plain SGD: K = 4 steps a round on minibatches of 8 from the client's keyed stream.
  std::vector<float> y = x0, g(static_cast<std::size_t>(d));
  for (std::uint32_t round = 0; round < 5; ++round) {
    p.update(*problem, 0, round, x0.data());
    algo::BatchStream batches(problem->client_samples(0), 8,
                              Rng(3, round, 0, Purpose::kPersonalBatches));
    Rng noise(3, round, 0, Purpose::kPersonalNoise);
    for (int k = 0; k < 4; ++k) {
      problem->loss_grad(0, y.data(), batches.next(), g.data(), noise);
      for (std::int64_t i = 0; i < d; ++i) y[i] -= 0.1f * g[i];
    }
  }
  std::vector<float> v(static_cast<std::size_t>(d));
  p.personal_model(*problem, 0, 4, x0.data(), v.data());
  REQUIRE(v == y);
  REQUIRE(v != x0);

  // finetune with K = 0 (the config asks for K >= 1; the class allows 0): the global model.
  o.kind = algo::PersonalizationKind::kFinetune;
  o.name = "finetune";
  o.steps = 0;
  algo::Personalization f(o, steps, 3, x0);
  f.declare_state(store);
  std::vector<float> out(static_cast<std::size_t>(d));
  f.personal_model(*problem, 0, 2, y.data(), out.data());
  REQUIRE(out == y);
  REQUIRE(problem->evaluate_client(0, out.data()).correct ==
          problem->evaluate_client(0, y.data()).correct);
}

TEST_CASE("pers: ifca's clients pick the closer model and each model follows its clients",
          "[pers]") {
  // Clients a = (-1, 3), h = 1, x0 = 0, k = 2: both models start at 0, so round 1 is fedavg
  // for model 0 (ties go to the lowest index): x_0 = mean(y_i) = 1 - rho with
  // rho = (1 - eta)^K. Round 2: client 1 prefers model 1 (still 0), client 2 model 0; each
  // model then follows its one client: model 0 -> 3 + (x_0 - 3) rho, and x is model 0 (one
  // client each: the lowest index).
  const std::string text =
      "data: {name: quadratic, dim: 1, h: [1, 1], a: [-1, 3], x0: 0}\n"
      "clients: {num_clients: 2}\n"
      "algorithm: {name: fedavg, batch_size: 0, local_lr: 0.1, local_steps: 5}\n"
      "personalization: {name: ifca, k: 2, init_spread: 0}\n"
      "eval: {every: 0}\n";
  const double rho = std::pow(0.9, 5);
  const auto r1 = run_text("rounds: 1\n" + text, {}, tmp_h5("ifca1"));
  REQUIRE(std::fabs(r1.final_model[0] - (1 - rho)) < 1e-6);
  const auto r2 = run_text("rounds: 2\n" + text, {}, tmp_h5("ifca2"));
  REQUIRE(std::fabs(r2.final_model[0] - (3 + (1 - rho - 3) * rho)) < 1e-6);
  const auto r60 = run_text("rounds: 60\n" + text, {}, tmp_h5("ifca60"));
  REQUIRE(std::fabs(r60.final_model[0] - 3) < 1e-5);  // fedavg would sit at 1
  for (const char* t : {"ifca1", "ifca2", "ifca60"}) std::filesystem::remove(tmp_h5(t));
  // logreg starts every weight at zero: without a spread every client ties and takes model 0,
  // which then always wins, so ifca would be fedavg; the default spread splits the clients.
  const auto avg = run_text("rounds: 4\n" + kClasses, {}, tmp_h5("ifca_avg"));
  const auto tied = run_text("rounds: 4\n" + kClasses,
                             {"personalization.name=ifca", "personalization.init_spread=0"},
                             tmp_h5("ifca_tied"));
  const auto spread =
      run_text("rounds: 4\n" + kClasses, {"personalization.name=ifca"}, tmp_h5("ifca_spread"));
  REQUIRE(tied.final_model == avg.final_model);
  REQUIRE(spread.final_model != avg.final_model);
  for (const char* t : {"ifca_avg", "ifca_tied", "ifca_spread"}) std::filesystem::remove(tmp_h5(t));
}

TEST_CASE("pers: client test sets are a rank-independent split of each client's rows",
          "[pers]") {
  const Config none = Config::from_text(kClasses, {"data.client_test_fraction=0"},
                                        algo::run_schema());
  const Config split = Config::from_text(kClasses, {}, algo::run_schema());
  auto all = algo::make_problem(none);
  auto a = algo::make_problem(split);
  auto b = algo::make_problem(split);
  REQUIRE_FALSE(all->has_client_tests());
  REQUIRE(a->has_client_tests());
  std::vector<float> x(static_cast<std::size_t>(a->num_params()), 0.01f);
  for (int c = 0; c < 6; ++c) {
    const std::int64_t n = all->client_samples(c);
    const std::int64_t m = std::clamp<std::int64_t>(std::llround(0.25 * static_cast<double>(n)), 1, n - 1);
    REQUIRE(a->client_test_samples(c) == m);
    REQUIRE(a->client_samples(c) == n - m);
    const auto ea = a->evaluate_client(c, x.data()), eb = b->evaluate_client(c, x.data());
    REQUIRE(ea.count == m);
    REQUIRE(ea.loss_sum == eb.loss_sum);
    REQUIRE(ea.correct == eb.correct);
  }
}

TEST_CASE("pers: the client accuracy distribution by hand", "[pers]") {
  // numpy: mean 0.55, std (ddof 0) 0.28722813, percentile 10/50/90 = 0.19, 0.55, 0.91.
  std::vector<float> acc;
  for (int i = 10; i >= 1; --i) acc.push_back(static_cast<float>(i) / 10.0f);
  const auto s = algo::client_accuracy_stats(acc);
  REQUIRE(s.mean == Approx(0.55).epsilon(1e-6));
  REQUIRE(s.std == Approx(0.28722813).epsilon(1e-6));
  REQUIRE(s.p10 == Approx(0.19).epsilon(1e-6));
  REQUIRE(s.p50 == Approx(0.55).epsilon(1e-6));
  REQUIRE(s.p90 == Approx(0.91).epsilon(1e-6));
  REQUIRE(s.min == Approx(0.1).epsilon(1e-6));
  const auto one = algo::client_accuracy_stats({0.75f});
  REQUIRE(one.std == 0);
  REQUIRE(one.p10 == 0.75);
}

TEST_CASE("pers: per-client accuracies are recorded; finetune's global column is fedavg's",
          "[pers]") {
  const auto path = tmp_h5("clients_none"), fpath = tmp_h5("clients_ft");
  const auto none = run_text("rounds: 3\n" + kClasses, {}, path);
  const auto ft = run_text("rounds: 3\n" + kClasses,
                           {"personalization.name=finetune", "personalization.steps=5"}, fpath);
  const auto acc = read(path, "/clients/accuracy");
  REQUIRE(acc.size() == 6);
  double mean = 0;
  for (float a : acc) mean += a / 6.0;
  const auto recorded = read(path, "/rounds/client_acc_mean");
  REQUIRE(recorded.size() == 3);
  REQUIRE(recorded.back() == Approx(mean).epsilon(1e-6));
  // The global model is trained the same way, so its per-client accuracies equal fedavg's.
  REQUIRE(read(fpath, "/clients/global_accuracy") == acc);
  REQUIRE(read(fpath, "/rounds/global_client_acc_p10") == read(path, "/rounds/client_acc_p10"));
  REQUIRE(none.final_model == ft.final_model);
  // Five local steps on a client's own data help it on its own distribution, on average.
  const auto tuned = read(fpath, "/rounds/client_acc_mean");
  REQUIRE(tuned.back() > recorded.back());
  std::filesystem::remove(path);
  std::filesystem::remove(fpath);
}

TEST_CASE("pers: ditto leaves the global model to the algorithm; local never moves it",
          "[pers]") {
  const auto none = run_text("rounds: 4\n" + kClasses, {}, tmp_h5("d_none"));
  const auto ditto = run_text("rounds: 4\n" + kClasses,
                              {"personalization.name=ditto", "personalization.lambda=0.3"},
                              tmp_h5("d_ditto"));
  const auto local = run_text("rounds: 4\n" + kClasses, {"personalization.name=local"},
                              tmp_h5("d_local"));
  REQUIRE(ditto.final_model == none.final_model);
  const Config cfg = Config::from_text(kClasses, {}, algo::run_schema());
  auto problem = algo::make_problem(cfg);
  std::vector<float> x0(static_cast<std::size_t>(problem->num_params()));
  problem->init(x0.data(), 3);
  REQUIRE(local.final_model == x0);
  const auto bits = read(tmp_h5("d_local"), "/rounds/uplink_bits");
  REQUIRE(std::all_of(bits.begin(), bits.end(), [](float b) { return b == 0; }));
  for (const char* t : {"d_none", "d_ditto", "d_local"}) std::filesystem::remove(tmp_h5(t));
}
