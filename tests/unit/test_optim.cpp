// Learning-rate schedules, weight decay, gradient clipping, local momentum and data.normalize
// against values computed by hand (docs/algorithms.md §1.1, §1.4, §7).
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "algo/problem.h"
#include "algo/run_schema.h"
#include "algo/runner.h"
#include "app/hdf5_input.h"
#include "comm/communicator.h"
#include "algo/schedule.h"
#include "algo/server_optimizer.h"
#include "core/client_store.h"
#include "core/config.h"
#include "data/loaders.h"
#include "test_support.h"

using namespace cohort;
using cohort::test::TempDir;
using cohort::test::usage_error_of;

namespace {

Config parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return Config::from_text(yaml, overrides, algo::run_schema());
}

// The local schedule of a fedavg config with local_lr = lr over `rounds` rounds.
algo::LrSchedule local_schedule(long long rounds, double lr, const std::string& schedule) {
  const Config cfg = parse("rounds: " + std::to_string(rounds) +
                           "\nalgorithm: {name: fedavg, local_lr: " + std::to_string(lr) +
                           ", lr_schedule: " + schedule + "}\n");
  return algo::LrSchedule::from_config(cfg, "algorithm.lr_schedule", lr, "algorithm.local_lr");
}

// The message of a config that a run would refuse: the schema's, or check by the factories.
std::string config_error(const std::string& yaml) {
  return usage_error_of([&] {
    const Config cfg = parse(yaml);
    algo::make_algorithm(cfg, 0);
    algo::ServerOptimizerOptions::from_config(cfg);
  });
}

// A 1-client quadratic problem (f(y) = sum_j h_j (y_j - a_j)^2 / 2, gradient h (y - a)) and the
// algorithm of `algorithm` on it, with its client state declared in `store`.
struct Quadratic {
  Config cfg;
  std::unique_ptr<algo::Problem> problem;
  std::unique_ptr<algo::Algorithm> alg;
  ClientStore store{0, 1};
  Quadratic(const std::string& data, const std::string& algorithm)
      : cfg(parse("rounds: 4\nclients: {num_clients: 1}\ndata: {name: quadratic, " + data +
                  "}\nalgorithm: " + algorithm + "\n")),
        problem(algo::make_problem(cfg)),
        alg(algo::make_algorithm(cfg, problem->num_params())) {
    alg->declare_state(store);
  }
  std::vector<float> message(std::uint32_t round, std::vector<float> x) {
    std::vector<float> out(x.size());
    alg->client_message(*problem, 0, round, x.data(), out.data());
    return out;
  }
};

}  // namespace

TEST_CASE("schedule: constant, step and cosine rates by hand", "[optim][schedule]") {
  SECTION("constant") {
    const auto s = local_schedule(5, 0.25, "{name: constant}");
    for (long long t = 0; t < 5; ++t) CHECK(s.at(t) == 0.25);
    CHECK_FALSE(s.varies());
  }
  SECTION("step: milestone m lowers the rate from round m + 1 on") {
    const auto s = local_schedule(10, 0.8, "{name: step, milestones: [3, 6], factor: 0.5}");
    const double want[10] = {0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.2};
    for (long long t = 0; t < 10; ++t) CHECK(s.at(t) == want[t]);
  }
  SECTION("cosine from lr to the floor over the rounds") {
    const auto s = local_schedule(4, 1.0, "{name: cosine, min_lr: 0.2}");
    // 0.2 + 0.8 (1 + cos(pi t / 4)) / 2: 1, 0.2 + 0.4 (1 + sqrt(2)/2), 0.6, 0.2 + 0.4 (1 - ...)
    CHECK(s.at(0) == Approx(1.0).epsilon(1e-15));
    CHECK(s.at(1) == Approx(0.2 + 0.4 * (1 + std::sqrt(0.5))).epsilon(1e-15));
    CHECK(s.at(2) == Approx(0.6).epsilon(1e-15));
    CHECK(s.at(3) == Approx(0.2 + 0.4 * (1 - std::sqrt(0.5))).epsilon(1e-15));
  }
  SECTION("cosine without a floor reaches lr/2 half-way") {
    const auto s = local_schedule(10, 0.3, "{name: cosine}");
    CHECK(s.at(5) == Approx(0.15).epsilon(1e-15));
  }
}

TEST_CASE("schedule: inverse_time halves the rate after shift rounds", "[optim][schedule]") {
  // lr a / (a + t) with lr = 0.5, a = 4: 0.5, 0.4, 1/3, ..., 0.25 at t = 4, 0.125 at t = 12.
  const auto s = local_schedule(20, 0.5, "{name: inverse_time, shift: 4}");
  CHECK(s.at(0) == 0.5);
  CHECK(s.at(1) == Approx(0.4).epsilon(1e-15));
  CHECK(s.at(2) == Approx(1.0 / 3).epsilon(1e-15));
  CHECK(s.at(4) == 0.25);
  CHECK(s.at(12) == 0.125);
  CHECK(s.varies());
  CHECK_THAT(usage_error_of([] { local_schedule(5, 0.5, "{name: inverse_time, shift: 0}"); }),
             Catch::Contains("lr_schedule.shift"));
}

TEST_CASE("averaging: evaluations use the weighted average of the iterates", "[optim][averaging]") {
  // Two quadratic clients, fedavg with an inverse_time local rate. The plain run records every
  // iterate x_t (record_x); the averaged run must record x̄_T = sum_{t=2..T} w_t x_t / sum w_t,
  // w_t = (3 + t)^2 (start = 1 leaves round 1 out; x itself before that), and the objective
  // test loss + (l2/2) |x̄|^2.
  TempDir dir("averaging");
  const std::string base =
      "rounds: 6\nseed: 2\nclients: {num_clients: 2}\n"
      "data: {name: quadratic, dim: 2, h: [1, 2, 3, 1], a: [1, -1, 0, 2], x0: 0, record_x: true}\n"
      "algorithm: {name: fedavg, local_steps: 2, batch_size: 0, local_lr: 0.2, "
      "lr_schedule: {name: inverse_time, shift: 2}}\n";
  auto run = [&](const std::string& extra, const std::string& name) {
    const std::string path = dir.file(name);
    const Config cfg = Config::from_text(
        base + extra + "output: {path: " + path + ", progress_every: 0}\n", {}, algo::run_schema());
    auto comm = comm::make_self_communicator();
    REQUIRE(algo::run_experiment(cfg, *comm).status == "completed");
    return path;
  };
  auto read = [](const std::string& path, const std::string& name) {
    return read_hdf5_floats(path, name, 1, 1).data;
  };
  const std::string plain = run("eval: {every: 1}\n", "plain.h5");
  const std::string avg =
      run("averaging: {name: weighted, power: 2, shift: 3, start: 1}\neval: {every: 1, l2: 0.5}\n",
          "avg.h5");
  const std::vector<float> x[2] = {read(plain, "/rounds/x_0"), read(plain, "/rounds/x_1")};
  const std::vector<float> xa[2] = {read(avg, "/rounds/x_0"), read(avg, "/rounds/x_1")};
  const auto lr = read(plain, "/rounds/local_lr");
  for (int t = 0; t < 6; ++t) CHECK(lr[static_cast<std::size_t>(t)] == Approx(0.4 / (2 + t)));
  for (int T = 1; T <= 6; ++T) {
    for (int k = 0; k < 2; ++k) {
      double num = 0, den = 0;
      for (int t = 2; t <= T; ++t) {
        const double w = (3.0 + t) * (3.0 + t);
        num += w * x[k][static_cast<std::size_t>(t - 1)];
        den += w;
      }
      const double want = T == 1 ? x[k][0] : num / den;
      INFO("round " << T << " coordinate " << k);
      CHECK(xa[k][static_cast<std::size_t>(T - 1)] == Approx(want).epsilon(1e-6));
    }
  }
  // Training itself is unchanged by the average: the last iterate is saved the same.
  auto model = [](const std::string& path, const std::string& name) {
    return read_hdf5_floats(path, name, 1, 2).data;
  };
  CHECK(model(avg, "/model/x") == model(plain, "/model/x"));
  // And the results file holds the average beside it.
  const auto saved = model(avg, "/model_averaged/x");
  CHECK(saved[0] == xa[0].back());
  CHECK(saved[1] == xa[1].back());
  const auto loss = read(avg, "/rounds/test_loss"), obj = read(avg, "/rounds/objective");
  for (std::size_t t = 0; t < 6; ++t) {
    const double n2 = static_cast<double>(xa[0][t]) * xa[0][t] + static_cast<double>(xa[1][t]) * xa[1][t];
    CHECK(obj[t] == Approx(loss[t] + 0.25 * n2).epsilon(1e-6));  // read back as float32
  }
}

TEST_CASE("schedule: a linear warmup composes with step and cosine", "[optim][schedule]") {
  SECTION("warmup from 0 with step: the warmup multiplies the step rate") {
    // lr 1, W = 4 from 0: factors 0, 1/4, 2/4, 3/4; milestone 2 halves the rate from t = 2.
    const auto s =
        local_schedule(8, 1.0, "{name: step, milestones: [2], factor: 0.5, warmup_rounds: 4}");
    const double want[8] = {0.0, 0.25, 0.5 * 0.5, 0.5 * 0.75, 0.5, 0.5, 0.5, 0.5};
    for (long long t = 0; t < 8; ++t) CHECK(s.at(t) == Approx(want[t]).epsilon(1e-15));
  }
  SECTION("warmup from lr * 0.5 with cosine: the cosine spans the rounds after the warmup") {
    // lr 2, W = 2, s = 0.5: t = 0: 2 * 0.5, t = 1: 2 * 0.75; then 2 (1 + cos(pi (t - 2) / 4))/2.
    const auto s =
        local_schedule(6, 2.0, "{name: cosine, warmup_rounds: 2, warmup_start_factor: 0.5}");
    CHECK(s.at(0) == Approx(1.0).epsilon(1e-15));
    CHECK(s.at(1) == Approx(1.5).epsilon(1e-15));
    CHECK(s.at(2) == Approx(2.0).epsilon(1e-15));
    CHECK(s.at(3) == Approx(1.0 + std::sqrt(0.5)).epsilon(1e-15));
    CHECK(s.at(4) == Approx(1.0).epsilon(1e-15));
    CHECK(s.at(5) == Approx(1.0 - std::sqrt(0.5)).epsilon(1e-15));
  }
  SECTION("warmup alone on a constant rate") {
    const auto s = local_schedule(5, 0.4, "{name: constant, warmup_rounds: 2}");
    CHECK(s.varies());
    CHECK(s.at(0) == 0.0);
    CHECK(s.at(1) == Approx(0.2).epsilon(1e-15));
    CHECK(s.at(2) == 0.4);
  }
  SECTION("the server's schedule is read the same way") {
    const Config cfg = parse(
        "rounds: 6\nserver_optimizer: {name: momentum, lr: 0.5, lr_schedule: {name: step, "
        "milestones: [1, 3], factor: 0.1}}\n");
    const auto o = algo::ServerOptimizerOptions::from_config(cfg);
    CHECK(o.schedule.at(0) == 0.5);
    CHECK(o.schedule.at(1) == Approx(0.05).epsilon(1e-15));
    CHECK(o.schedule.at(3) == Approx(0.005).epsilon(1e-15));
  }
}

TEST_CASE("schedule, clipping, decay and momentum: config errors name the key", "[optim][config]") {
  CHECK(config_error("rounds: 10\nalgorithm: {lr_schedule: {name: step, milestones: [5, 5]}}") ==
        "algorithm.lr_schedule.milestones must be strictly increasing: 5 follows 5");
  CHECK(config_error("rounds: 10\nalgorithm: {lr_schedule: {name: step, milestones: [6, 2]}}") ==
        "algorithm.lr_schedule.milestones must be strictly increasing: 2 follows 6");
  CHECK(config_error("rounds: 10\nalgorithm: {lr_schedule: {name: step, milestones: [10]}}") ==
        "algorithm.lr_schedule.milestones: 10 is not below rounds = 10, so it would never apply");
  CHECK(config_error("rounds: 10\nalgorithm: {lr_schedule: {name: step}}") ==
        "algorithm.lr_schedule.name = step needs algorithm.lr_schedule.milestones: a list of "
        "rounds, e.g. [50, 75]");
  CHECK(config_error("algorithm: {lr_schedule: {name: step, milestones: [0]}}") ==
        "<config>: algorithm.lr_schedule.milestones = '[0]' is not allowed: expected a list of "
        "integers >= 1, e.g. [64, 32]");
  CHECK(config_error("algorithm: {lr_schedule: {name: step, milestones: [2], factor: 0}}") ==
        "<config>: algorithm.lr_schedule.factor = '0' is not allowed: expected a number > 0");
  CHECK(config_error("server_optimizer: {lr_schedule: {name: step, milestones: [2], "
                     "factor: -1}}") ==
        "<config>: server_optimizer.lr_schedule.factor = '-1' is not allowed: expected a number "
        "> 0");
  CHECK(config_error("server_optimizer: {lr: 0.5, lr_schedule: {name: cosine, min_lr: 0.6}}") ==
        "server_optimizer.lr_schedule.min_lr = 0.6 exceeds server_optimizer.lr = 0.5: the floor "
        "must be at most the rate");
  CHECK(config_error("rounds: 3\nalgorithm: {lr_schedule: {warmup_rounds: 3}}") ==
        "algorithm.lr_schedule.warmup_rounds = 3 must be less than rounds = 3");
  CHECK(config_error("algorithm: {lr_schedule: {warmup_start_factor: 1.5}}") ==
        "<config>: algorithm.lr_schedule.warmup_start_factor = '1.5' is not allowed: expected a "
        "number in [0, 1]");
  CHECK(config_error("algorithm: {lr_schedule: {name: linear}}") ==
        "<config>: unknown algorithm.lr_schedule.name 'linear' (known: constant, step, cosine, inverse_time)");
  CHECK(config_error("algorithm: {name: sgd, lr_schedule: {name: cosine}}") ==
        "algorithm.lr_schedule schedules fedavg's algorithm.local_lr; algorithm.name = sgd takes "
        "no local step: schedule the server's rate with server_optimizer.lr_schedule");
  CHECK(config_error("algorithm: {weight_decay: -0.1}") ==
        "<config>: algorithm.weight_decay = '-0.1' is not allowed: expected a number >= 0");
  CHECK(config_error("algorithm: {clip_norm: -1}") ==
        "<config>: algorithm.clip_norm = '-1' is not allowed: expected a number >= 0");
  CHECK(config_error("algorithm: {local_momentum: 1.5}") ==
        "<config>: algorithm.local_momentum = '1.5' is not allowed: expected a number in [0, 1]");
  CHECK(config_error("algorithm: {local_momentum_state: kept}") ==
        "<config>: algorithm.local_momentum_state = 'kept' is not allowed: expected one of "
        "reset | keep (did you mean 'keep'?)");
  CHECK(config_error("algorithm: {name: sgd, local_momentum: 0.9}") ==
        "<config>: key 'algorithm.local_momentum' is not an option of algorithm.name 'sgd'; it "
        "belongs to: fedavg, fedprox");
  // The algorithms with their own correction of the local steps declare no local momentum.
  CHECK(config_error("algorithm: {name: scaffold, local_momentum: 0.9}") ==
        "<config>: key 'algorithm.local_momentum' is not an option of algorithm.name "
        "'scaffold'; it belongs to: fedavg, fedprox");
}

TEST_CASE("local steps: weight decay and clipping by hand", "[optim][algo]") {
  SECTION("fedavg weight decay: g + lambda y") {
    // h = 1, a = 0, x = 2, K = 1, lr 0.5, lambda 0.1: g = 2 + 0.2, y = 2 - 1.1, message 1.1.
    Quadratic q("dim: 1, h: [1], a: [0]",
                "{name: fedavg, local_steps: 1, batch_size: 0, local_lr: 0.5, weight_decay: 0.1}");
    CHECK(q.message(0, {2.0f})[0] == Approx(1.1).epsilon(1e-6));
  }
  SECTION("fedavg clipping: the gradient (-3, -4) clipped to norm 1, then decay") {
    Quadratic q("dim: 2, h: [1, 1], a: [3, 4]",
                "{name: fedavg, local_steps: 1, batch_size: 0, local_lr: 1, clip_norm: 1}");
    const auto m = q.message(0, {0.0f, 0.0f});
    CHECK(m[0] == Approx(-0.6).epsilon(1e-6));
    CHECK(m[1] == Approx(-0.8).epsilon(1e-6));
    // Clipping first, decay after: at y = (1, 1), g = (-2, -3) -> (-2, -3)/sqrt(13) + 0.5 (1, 1).
    Quadratic qd("dim: 2, h: [1, 1], a: [3, 4]",
                 "{name: fedavg, local_steps: 1, batch_size: 0, local_lr: 1, clip_norm: 1, "
                 "weight_decay: 0.5}");
    // The message x - y loses the float32 rounding of y near 1 (2^-24): an absolute margin.
    const auto md = qd.message(0, {1.0f, 1.0f});
    CHECK(md[0] == Approx(-2 / std::sqrt(13.0) + 0.5).margin(1e-6));
    CHECK(md[1] == Approx(-3 / std::sqrt(13.0) + 0.5).margin(1e-6));
  }
  SECTION("a gradient within the norm is left alone") {
    Quadratic q("dim: 2, h: [1, 1], a: [3, 4]",
                "{name: fedavg, local_steps: 1, batch_size: 0, local_lr: 1, clip_norm: 5}");
    const auto m = q.message(0, {0.0f, 0.0f});
    CHECK(m[0] == -3.0f);
    CHECK(m[1] == -4.0f);
  }
  SECTION("sgd sends clip(g) + lambda x at the model it received") {
    Quadratic q("dim: 2, h: [1, 1], a: [3, 4]",
                "{name: sgd, batch_size: 0, clip_norm: 1, weight_decay: 0.5}");
    const auto m = q.message(0, {1.0f, 1.0f});
    CHECK(m[0] == Approx(-2 / std::sqrt(13.0) + 0.5).epsilon(1e-6));
    CHECK(m[1] == Approx(-3 / std::sqrt(13.0) + 0.5).epsilon(1e-6));
  }
  SECTION("the local schedule sets each round's step") {
    // K = 1 at x = 1 with h = 1, a = 0: message = lr(t) * 1; milestone 1 halves the rate.
    Quadratic q("dim: 1, h: [1], a: [0]",
                "{name: fedavg, local_steps: 1, batch_size: 0, local_lr: 0.5, "
                "lr_schedule: {name: step, milestones: [1], factor: 0.5}}");
    CHECK(q.message(0, {1.0f})[0] == 0.5f);
    CHECK(q.message(1, {1.0f})[0] == 0.25f);
    CHECK(q.alg->local_lr(1) == 0.25);
  }
}

TEST_CASE("local momentum: reset and keep over two rounds by hand", "[optim][algo]") {
  // h = 1, a = 0 (g = y), x = 1 both rounds, K = 2, lr 0.5, beta 0.5; v <- beta v + g,
  // y <- y - lr v. Round 1 from v = 0: v = 1, y = 0.5; v = 1, y = 0: message 1.
  // Round 2 with kept v = 1: v = 1.5, y = 0.25; v = 1, y = -0.25: message 1.25.
  const std::string base =
      "{name: fedavg, local_steps: 2, batch_size: 0, local_lr: 0.5, local_momentum: 0.5, "
      "local_momentum_state: ";
  SECTION("reset: every round starts from v = 0") {
    Quadratic q("dim: 1, h: [1], a: [0]", base + "reset}");
    CHECK(q.store.slots().empty());
    CHECK(q.message(0, {1.0f})[0] == 1.0f);
    CHECK(q.message(1, {1.0f})[0] == 1.0f);
  }
  SECTION("keep: the client's v carries into its next round, in the client store") {
    Quadratic q("dim: 1, h: [1], a: [0]", base + "keep}");
    REQUIRE(q.store.slots().size() == 1);
    CHECK(q.store.slots()[0].name == "local_momentum");
    CHECK(q.store.slots()[0].width == 1);
    CHECK(q.message(0, {1.0f})[0] == 1.0f);
    CHECK(q.store.find(0, 0)[0] == 1.0f);
    CHECK(q.message(1, {1.0f})[0] == 1.25f);
    CHECK(q.store.find(0, 0)[0] == 1.0f);
  }
}

namespace {

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  gzclose(f);
}

// A Fashion-MNIST directory of 2 training images of 2 pixels (0, 255) and (51, 102), and one
// test image (0, 255).
void write_tiny_fashion(const TempDir& dir) {
  auto idx = [](std::uint32_t magic, std::vector<std::uint32_t> dims,
                std::vector<unsigned char> payload) {
    std::vector<unsigned char> b;
    dims.insert(dims.begin(), magic);
    for (std::uint32_t v : dims)
      for (int shift = 24; shift >= 0; shift -= 8)
        b.push_back(static_cast<unsigned char>(v >> shift));
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  };
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx(0x803, {2, 1, 2}, {0, 255, 51, 102}));
  write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx(0x801, {2}, {1, 2}));
  write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx(0x803, {1, 1, 2}, {0, 255}));
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx(0x801, {1}, {3}));
}

}  // namespace

TEST_CASE("data.normalize: dataset, none and a given pair on a tiny IDX set", "[optim][data]") {
  TempDir dir("normalize");
  write_tiny_fashion(dir);
  auto load = [&](const std::string& normalize) {
    const Config cfg = parse("data: {name: fashion_mnist, path: " + dir.path.string() +
                             ", normalize: " + normalize + "}\n");
    return data::load_fashion_mnist(cfg.get_string("data.path"), data::Normalize::from_config(cfg));
  };
  SECTION("dataset: the training pixels' own mean and population std") {
    // Pixels / 255: 0, 1, 0.2, 0.4; mean 0.4, variance (0.16 + 0.36 + 0.04 + 0) / 4 = 0.14.
    const auto tt = load("dataset");
    const double sd = std::sqrt(0.14);
    const std::vector<double> want = {-0.4 / sd, 0.6 / sd, -0.2 / sd, 0.0};
    for (std::size_t i = 0; i < 4; ++i) CHECK(tt.train.x[i] == Approx(want[i]).epsilon(1e-6));
    CHECK(tt.test.x[0] == Approx(-0.4 / sd).epsilon(1e-6));  // the test set uses the same pair
  }
  SECTION("none: pixels scaled to [0, 1] only") {
    const auto tt = load("none");
    CHECK(tt.train.x == std::vector<float>{0.0f, 1.0f, 0.2f, 0.4f});
    CHECK(tt.test.x == std::vector<float>{0.0f, 1.0f});
  }
  SECTION("a given [mean, std]") {
    const auto tt = load("[0.1307, 0.3081]");
    CHECK(tt.train.x[0] == static_cast<float>((0.0 - 0.1307) / 0.3081));
    CHECK(tt.train.x[1] == static_cast<float>((1.0 - 0.1307) / 0.3081));
    CHECK(tt.test.x[1] == static_cast<float>((1.0 - 0.1307) / 0.3081));
  }
  SECTION("bad values are usage errors naming the key") {
    CHECK(usage_error_of([&] { load("[0.5, 0]"); }) ==
          "data.normalize = [mean, std]: std = 0 is not allowed: expected a finite number > 0");
    CHECK(usage_error_of([&] { load("[0.5, -1]"); }) ==
          "data.normalize = [mean, std]: std = -1 is not allowed: expected a finite number > 0");
    CHECK(usage_error_of([&] { load("[0.5, 0.2, 0.1]"); })
              .ends_with("data.normalize = '[0.5, 0.2, 0.1]' is not allowed: expected one of "
                         "dataset | none, or "
                         "a list of 2 numbers (got 3 values)"));
    CHECK(usage_error_of([&] { load("[0.5, x]"); })
              .ends_with("data.normalize = '[0.5, x]' is not allowed: expected one of dataset | "
                         "none, or a list "
                         "of 2 numbers"));
    CHECK(usage_error_of([&] { load("zscore"); })
              .ends_with("data.normalize = 'zscore' is not allowed: expected one of dataset | "
                         "none, or a list "
                         "of 2 numbers"));
  }
}
