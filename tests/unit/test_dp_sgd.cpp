// dp_sgd (docs/algorithms.md §6, Note [DP-SGD]): per-example norms and clipped sums of every model
// against single-example passes, the bit-for-bit reduction to plain SGD, the noise's standard
// deviation, the Poisson batches, the accountant's steps and the config checks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "algo/problem.h"
#include "algo/run_schema.h"
#include "algo/runner.h"
#include "app/hdf5_input.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "core/rng.h"
#include "layer_reference.h"
#include "model/layer_model.h"
#include "privacy/accountant.h"
#include "privacy/dp.h"
#include "privacy/dp_sgd.h"
#include "test_support.h"

using namespace cohort;
using cohort::test::layers::Images;
using cohort::test::layers::make_images;
using cohort::test::layers::test_params;

namespace {

// A model under test with its batch (classification images, or regression rows for linear).
struct Case {
  std::string name;
  std::unique_ptr<model::Model> model;
  Images data;
  std::vector<float> targets;  // linear only
  model::Batch batch(std::int64_t first, std::int64_t rows) const {
    model::Batch b{data.x.data() + first * data.shape.size(), rows, data.shape.size()};
    if (targets.empty()) {
      b.labels = data.labels.data() + first;
      b.shape = data.shape;
    } else {
      b.targets = targets.data() + first;
    }
    return b;
  }
};

// Every model family: logreg, mlp with each activation, linear, and layer stacks with conv,
// pooling, group norm, a residual block and dropout (70 rows: the layer models' passes of 32, 32
// and 6 rows).
std::vector<Case> cases(bool dropout) {
  using model::Shape;
  std::vector<Case> out;
  const std::int64_t rows = 70;
  const Shape flat{12, 1, 1};
  out.push_back({"logreg", model::make_logreg(12, 4), make_images(flat, rows, 4, 1), {}});
  out.push_back({"mlp relu", model::make_mlp(12, 4, {9, 7}, model::Activation::kRelu),
                 make_images(flat, rows, 4, 2), {}});
  out.push_back({"mlp tanh", model::make_mlp(12, 3, {8}, model::Activation::kTanh),
                 make_images(flat, rows, 3, 3), {}});
  out.push_back({"mlp sigmoid", model::make_mlp(12, 3, {8}, model::Activation::kSigmoid),
                 make_images(flat, rows, 3, 4), {}});
  {
    Case c{"linear", model::make_linear(12), make_images(flat, rows, 2, 5), {}};
    Rng t(3, 0, 0, Purpose::kTest);
    for (std::int64_t i = 0; i < rows; ++i) c.targets.push_back(static_cast<float>(t.normal()));
    out.push_back(std::move(c));
  }
  const Shape img{2, 6, 6};
  std::vector<model::LayerSpec> specs = {
      {{"type", "conv2d"}, {"out", "4"}, {"kernel", "3"}, {"padding", "1"}},
      {{"type", "groupnorm"}, {"groups", "2"}},
      {{"type", "relu"}},
      {{"type", "residual"}, {"out", "6"}, {"stride", "2"}, {"groups", "2"}},
      {{"type", "residual"}, {"out", "4"}, {"stride", "1"}, {"groups", "2"}},  // 1x1 shortcut
      {{"type", "maxpool"}, {"kernel", "3"}},
      {{"type", "flatten"}},
      {{"type", "linear"}, {"out", "5"}},
      {{"type", "tanh"}},
      {{"type", "linear"}, {"out", "3"}}};
  if (dropout) specs.insert(specs.begin() + 8, model::LayerSpec{{"type", "dropout"}, {"p", "0.3"}});
  out.push_back({"layers", std::make_unique<model::LayerModel>(
                               "layers", img, 3, model::build_stack(img, specs)),
                 make_images(img, rows, 3, 6), {}});
  return out;
}

double norm_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

std::string h5(const std::string& name) { return test::temp_h5("dpsgd", name); }

algo::RunOutcome run(const std::string& text, const std::vector<std::string>& extra,
                     const std::string& path) {
  return test::run_config_text(text, extra, path);
}

const std::string kRun =
    "seed: 4\n"
    "rounds: 3\n"
    "data: {name: synthetic_fedprox, alpha: 0.5, beta: 0.5, dim: 20, classes: 5, "
    "min_samples: 20}\n"
    "model: {name: mlp, hidden: [16]}\n"
    "clients: {num_clients: 12, per_round: 4}\n"
    "algorithm: {name: fedavg, local_steps: 3, batch_size: 0, local_lr: 0.1}\n"
    "eval: {every: 1}\n";

}  // namespace

TEST_CASE("privacy: dp_sgd: per-example norms and clipped sums equal single-example passes", "[privacy]") {
  for (const auto& c : cases(false)) {
    INFO(c.name);
    const auto p = test_params(*c.model, 7);
    const std::int64_t rows = c.data.rows, d = c.model->num_params();
    // Each example alone: its gradient and norm.
    std::vector<std::vector<float>> g(static_cast<std::size_t>(rows), std::vector<float>(d));
    std::vector<double> norm(static_cast<std::size_t>(rows));
    for (std::int64_t n = 0; n < rows; ++n) {
      c.model->loss_grad(p.data(), c.batch(n, 1), g[n].data());
      norm[n] = norm_of(g[n]);
    }
    std::vector<double> got(static_cast<std::size_t>(rows));
    std::vector<float> sum(static_cast<std::size_t>(d));
    // The batched norms: float32 sums over at most a few hundred terms, 1e-4 relative.
    c.model->clipped_loss_grad(p.data(), c.batch(0, rows), INFINITY, 1.0, sum.data(), nullptr,
                               got.data());
    for (std::int64_t n = 0; n < rows; ++n) REQUIRE(got[n] == Approx(norm[n]).epsilon(1e-4));
    // C at the median norm: half of the examples are clipped. The sum against sum_n c_n g_n,
    // within float32 rounding of the sum of |terms|.
    std::vector<double> sorted = norm;
    std::sort(sorted.begin(), sorted.end());
    const double clip = sorted[sorted.size() / 2];
    const double loss = c.model->clipped_loss_grad(p.data(), c.batch(0, rows), clip, 2.5,
                                                   sum.data(), nullptr, nullptr);
    std::vector<float> plain(static_cast<std::size_t>(d));
    REQUIRE(loss == c.model->loss_grad(p.data(), c.batch(0, rows), plain.data()));
    for (std::int64_t j = 0; j < d; ++j) {
      double want = 0, scale = 0;
      for (std::int64_t n = 0; n < rows; ++n) {
        const double f = std::min(1.0, clip / norm[n]);
        want += f * g[n][j] / 2.5;
        scale += std::fabs(f * g[n][j] / 2.5);
      }
      INFO("coordinate " << j);
      REQUIRE(std::fabs(sum[j] - want) <= 1e-4 * scale + 1e-7);
    }
    // A clipped per-example gradient never exceeds C (to float32 rounding), and one above C
    // lands on C.
    std::vector<float> one(static_cast<std::size_t>(d));
    for (std::int64_t n = 0; n < rows; ++n) {
      c.model->clipped_loss_grad(p.data(), c.batch(n, 1), clip, 1.0, one.data());
      const double len = norm_of(one);
      REQUIRE(len <= clip * (1 + 1e-5));
      if (norm[n] > clip) REQUIRE(len == Approx(clip).epsilon(1e-5));
      else REQUIRE(len == Approx(norm[n]).epsilon(1e-5));
    }
  }
}

TEST_CASE("privacy: dp_sgd: unclipped and divided by the batch size, the gradient is loss_grad's bit for "
          "bit",
          "[privacy]") {
  for (const auto& c : cases(true)) {
    INFO(c.name);
    const auto p = test_params(*c.model, 8);
    const std::int64_t d = c.model->num_params();
    for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{7}, c.data.rows}) {
      std::vector<float> a(static_cast<std::size_t>(d)), b(static_cast<std::size_t>(d));
      Rng r1(9, 1, 2, Purpose::kTest), r2(9, 1, 2, Purpose::kTest);  // the same dropout masks
      const double la = c.model->loss_grad(p.data(), c.batch(0, rows), a.data(), &r1);
      const double lb = c.model->clipped_loss_grad(p.data(), c.batch(0, rows), INFINITY,
                                                   static_cast<double>(rows), b.data(), &r2);
      REQUIRE(la == lb);
      REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("privacy: dp_sgd: with sigma = 0, C = inf and q = 1 a run is plain full-batch SGD bit for bit",
          "[privacy]") {
  for (const std::string algorithm : {"fedavg", "sgd"}) {
    INFO(algorithm);
    const std::vector<std::string> alg = {"algorithm.name=" + algorithm};
    std::vector<std::string> dp = alg;
    for (const char* o : {"privacy.name=dp_sgd", "privacy.clip=.inf", "privacy.noise_multiplier=0",
                          "privacy.sample_rate=1"})
      dp.push_back(o);
    std::string text = kRun;
    if (algorithm == "sgd") {
      const std::string from = "{name: fedavg, local_steps: 3, batch_size: 0, local_lr: 0.1}";
      text.replace(text.find(from), from.size(), "{name: sgd, batch_size: 0}");
    }
    const auto plain = run(text, alg, h5("plain"));
    const auto priv = run(text, dp, h5("private"));
    REQUIRE(plain.status == "completed");
    REQUIRE(priv.status == "completed");
    REQUIRE(plain.final_model.size() == priv.final_model.size());
    REQUIRE(std::memcmp(plain.final_model.data(), priv.final_model.data(),
                        plain.final_model.size() * sizeof(float)) == 0);
    // The run is accounted: epsilon of K t steps of the Gaussian mechanism at q = 1, sigma = 0.
    const auto eps = read_hdf5_floats(h5("private"), "/rounds/epsilon", 1, 1).data;
    REQUIRE(eps.size() == 3);
    REQUIRE(std::isinf(eps[0]));
    std::filesystem::remove(h5("plain"));
    std::filesystem::remove(h5("private"));
  }
}

TEST_CASE("privacy: dp_sgd: a run's steps carry noise of standard deviation sigma C / (q n), once "
          "per step",
          "[privacy]") {
  // One client, a linear model of d = 2001 parameters. With C = 1e-6 every clipped example
  // gradient is below 1e-6 in norm, while the noise has standard deviation sigma C / (q n) with
  // sigma = 1e4: the model moves by the noise alone, to 1e-4 relative. One round of sgd (one step,
  // server rate eta) moves it by eta N(0, (sigma C / (q n))^2); one round of fedavg with K = 4
  // local steps at rate eta by the sum of four such draws, sqrt(K) times the spread. A missing,
  // doubled or per-example noise, or the realised batch as denominator, fails this.
  const std::string text =
      "seed: 6\n"
      "rounds: 1\n"
      "data: {name: synthetic_linear, dim: 2000, samples_per_client: 100}\n"
      "model: {name: linear}\n"
      "clients: {num_clients: 1}\n"
      "privacy: {name: dp_sgd, clip: 1.0e-6, noise_multiplier: 1.0e4, sample_rate: 0.5}\n"
      "eval: {every: 1}\n";
  const Config cfg = Config::from_text(text, {}, algo::run_schema());
  const auto problem = algo::make_problem(cfg);
  const double n = static_cast<double>(problem->client_samples(0));
  std::vector<float> x0(static_cast<std::size_t>(problem->num_params()));
  problem->init(x0.data(), 6);
  const double sd = 1.0e4 * 1.0e-6 / (0.5 * n);
  struct Case {
    std::string algorithm;
    double scale;  // the update's expected spread in units of sd
  };
  for (const Case& c : {Case{"{name: sgd, batch_size: 0}", 0.5},
                        Case{"{name: fedavg, local_steps: 4, batch_size: 0, local_lr: 0.5}",
                             0.5 * 2.0}}) {
    INFO(c.algorithm);
    std::vector<std::string> extra = {"algorithm=" + c.algorithm};
    if (c.algorithm.rfind("{name: sgd", 0) == 0) extra.push_back("server_optimizer.lr=0.5");
    const auto got = run(text, extra, h5("noise_run"));
    REQUIRE(got.status == "completed");
    double ss = 0, sum = 0;
    for (std::size_t k = 0; k < x0.size(); ++k) {
      const double u = static_cast<double>(got.final_model[k]) - x0[k];
      ss += u * u;
      sum += u;
    }
    const double m = static_cast<double>(x0.size());
    const double want = c.scale * sd;
    // The sample standard deviation's relative error is about sqrt(1/(2m)) (1.6%): allow 5.
    CHECK(std::sqrt(ss / m) == Approx(want).epsilon(5 * std::sqrt(1 / (2 * m))));
    CHECK(std::fabs(sum / m) < 5 * want / std::sqrt(m));
    std::filesystem::remove(h5("noise_run"));
  }
}

TEST_CASE("privacy: dp_sgd: Poisson batches of rate q and noise of standard deviation sigma C / (q n)",
          "[privacy]") {
  privacy::DpSgdOptions o;
  o.enabled = true;
  o.clip = 2.0;
  o.sigma = 1.5;
  o.q = 0.05;
  const std::int64_t n = 400;
  privacy::DpSgdSteps steps(o, 11, 3, 5, n);
  REQUIRE(steps.denominator() == Approx(20.0));
  // 2000 batches: the total size is Binomial(2000 n, q) and every example's count
  // Binomial(2000, q); positions ascending and in range.
  const int draws = 2000;
  std::vector<int> hits(static_cast<std::size_t>(n), 0);
  double total = 0;
  for (int k = 0; k < draws; ++k) {
    const auto b = steps.next_batch();
    REQUIRE(std::is_sorted(b.begin(), b.end()));
    REQUIRE(std::adjacent_find(b.begin(), b.end()) == b.end());
    for (auto i : b) {
      REQUIRE((i >= 0 && i < n));
      ++hits[static_cast<std::size_t>(i)];
    }
    total += static_cast<double>(b.size());
  }
  const double mean = draws * n * o.q, sd = std::sqrt(draws * n * o.q * (1 - o.q));
  REQUIRE(std::fabs(total - mean) < 5 * sd);
  double var = 0;
  for (int h : hits) var += (h - draws * o.q) * (h - draws * o.q) / n;
  // The sample variance of 400 counts: relative standard error sqrt(2/400) ~ 7%; allow 5 of them.
  REQUIRE(var == Approx(draws * o.q * (1 - o.q)).epsilon(5 * std::sqrt(2.0 / n)));
  // The noise: 50000 draws of N(0, (sigma C / B)^2) = N(0, 0.15^2).
  std::vector<float> g(50000, 0.0f);
  steps.add_noise(g.data(), static_cast<std::int64_t>(g.size()));
  double ss = 0, s = 0;
  for (float v : g) {
    ss += static_cast<double>(v) * v;
    s += v;
  }
  const double m = static_cast<double>(g.size()), want = 1.5 * 2.0 / 20.0;
  REQUIRE(std::sqrt(ss / m) == Approx(want).epsilon(5 * std::sqrt(2 / m)));
  REQUIRE(std::fabs(s / m) < 5 * want / std::sqrt(m));
  // Keyed: the same (seed, round, client) draws the same batches.
  privacy::DpSgdSteps again(o, 11, 3, 5, n), other(o, 11, 3, 6, n);
  const auto b1 = again.next_batch();
  const std::vector<std::int64_t> first(b1.begin(), b1.end());
  privacy::DpSgdSteps fresh(o, 11, 3, 5, n);
  const auto b2 = fresh.next_batch();
  REQUIRE(first == std::vector<std::int64_t>(b2.begin(), b2.end()));
  const auto b3 = other.next_batch();
  REQUIRE(first != std::vector<std::int64_t>(b3.begin(), b3.end()));
}

TEST_CASE("privacy: dp_sgd: epsilon counts K steps a round; calibration and the budget", "[privacy]") {
  const std::vector<std::string> dp = {"privacy.name=dp_sgd", "privacy.clip=1",
                                       "privacy.noise_multiplier=1.2", "privacy.sample_rate=0.25",
                                       "algorithm.batch_size=8"};
  const auto got = run(kRun, dp, h5("eps"));
  REQUIRE(got.status == "completed");
  const auto eps = read_hdf5_floats(h5("eps"), "/rounds/epsilon", 1, 1).data;
  REQUIRE(eps.size() == 3);
  for (int t = 0; t < 3; ++t)  // K = local_steps = 3 per round
    REQUIRE(eps[static_cast<std::size_t>(t)] ==
            Approx(privacy::epsilon(0.25, 1.2, 3 * (t + 1), 1e-5).epsilon).epsilon(1e-6));
  std::filesystem::remove(h5("eps"));
  // local_epochs: E ceil(1/q) steps a round.
  const Config cfg = Config::from_text(
      kRun, {"privacy.name=dp_sgd", "privacy.sample_rate=0.3", "algorithm.local_steps=0",
             "algorithm.local_epochs=2"},
      algo::run_schema());
  REQUIRE(privacy::DpSgdOptions::from_config(cfg).steps_per_round == 8);
  // A budget between rounds 2 and 3 stops the run after round 2.
  const double e2 = privacy::epsilon(0.25, 1.2, 6, 1e-5).epsilon;
  const double e3 = privacy::epsilon(0.25, 1.2, 9, 1e-5).epsilon;
  auto budget = dp;
  budget.push_back("privacy.target_epsilon=" + std::to_string((e2 + e3) / 2));
  const auto stopped = run(kRun, budget, h5("budget"));
  REQUIRE(stopped.status == "budget_exhausted");
  REQUIRE(stopped.rounds_done == 2);
  std::filesystem::remove(h5("budget"));
  // calibrate: 3 rounds of 3 steps end within the target.
  const Config cal = Config::from_text(
      kRun, {"privacy.name=dp_sgd", "privacy.sample_rate=0.25", "privacy.target_epsilon=2",
             "privacy.calibrate=true"},
      algo::run_schema());
  const auto o = privacy::DpSgdOptions::from_config(cal);
  REQUIRE(privacy::epsilon(0.25, o.sigma, 9, 1e-5).epsilon <= 2.0);
  REQUIRE(privacy::epsilon(0.25, o.sigma * (1 - 1e-5), 9, 1e-5).epsilon > 2.0 - 1e-3);
}

TEST_CASE("privacy: dp_sgd: bad options are usage errors naming the key", "[privacy]") {
  auto error = [](const std::vector<std::string>& extra) {
    return test::usage_error_of([&] {
      const Config cfg = Config::from_text(kRun, extra, algo::run_schema());
      privacy::DpOptions::from_config(cfg, 12);
    });
  };
  const std::string name = "privacy.name=dp_sgd";
  CHECK_THAT(error({name, "privacy.sample_rate=0"}), Catch::Contains("privacy.sample_rate"));
  CHECK_THAT(error({name, "privacy.sample_rate=1.5"}), Catch::Contains("privacy.sample_rate"));
  CHECK_THAT(error({name, "privacy.clip=0"}), Catch::Contains("privacy.clip"));
  CHECK_THAT(error({name, "privacy.clip=-1"}), Catch::Contains("privacy.clip"));
  CHECK_THAT(error({name, "privacy.target_epsilon=0"}), Catch::Contains("privacy.target_epsilon"));
  CHECK_THAT(error({name, "privacy.delta=1"}), Catch::Contains("privacy.delta"));
  CHECK_THAT(error({name, "privacy.clip=.inf"}), Catch::Contains("privacy.noise_multiplier = 0"));
  CHECK_THAT(error({name, "algorithm.name=scaffold"}), Catch::Contains("algorithm.name"));
  CHECK_THAT(error({name, "privacy.calibrate=true"}), Catch::Contains("privacy.target_epsilon"));
}
