// Config layer: schema validation, defaults, overrides, suggestions, and the semantic checks that
// need the data (make_problem, clients_per_round, FedAvgOptions). Every error test pins the exact
// words a user reads, so a message that loses its key, value or hint fails here.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "algo/fedavg.h"
#include "attack/attack.h"
#include "algo/problem.h"
#include "algo/run_schema.h"
#include "algo/sampling.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/schema.h"
#include "test_support.h"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using cohort::Config;
using cohort::UsageError;
using cohort::test::usage_error_of;

namespace {

using Overrides = std::vector<std::string>;

Config parse(const std::string& yaml, const Overrides& overrides = {}) {
  return Config::from_text(yaml, overrides, cohort::algo::run_schema(), "test.yaml");
}

std::string config_error(const std::string& yaml, const Overrides& overrides = {}) {
  return usage_error_of([&] { parse(yaml, overrides); });
}

// The error make_problem (then clients_per_round, then the algorithm's options) raises.
std::string semantic_error(const std::string& yaml, const Overrides& overrides = {}) {
  const Config cfg = parse(yaml, overrides);
  return usage_error_of([&] {
    auto problem = cohort::algo::make_problem(cfg);
    cohort::algo::clients_per_round(cfg, problem->num_clients());
    cohort::algo::FedAvgOptions::from_config(cfg);
  });
}

}  // namespace

TEST_CASE("config: an empty config resolves to the documented defaults", "[config]") {
  for (const std::string text : {"", "# only a comment\n", "~\n"}) {
    INFO("config text: '" << text << "'");
    const Config c = parse(text);
    CHECK(c.get_int("seed") == 0);
    CHECK(c.get_int("rounds") == 10);
    CHECK(c.get_string("data.name") == "fashion_mnist");
    CHECK(c.get_string("data.path") == "/usr/share/datasets/fashion-mnist");
    CHECK(c.get_string("data.partition.name") == "auto");
    CHECK(c.get_string("model.name") == "auto");
    CHECK(c.get_int("clients.num_clients") == 10);
    CHECK(c.get_int("clients.per_round") == 0);
    CHECK(c.get_float("clients.fraction") == 1.0);
    CHECK(c.get_string("algorithm.name") == "fedavg");
    CHECK(c.get_int("algorithm.local_steps") == 0);
    CHECK(c.get_int("algorithm.local_epochs") == 1);
    CHECK(c.get_int("algorithm.batch_size") == 32);
    CHECK(c.get_float("algorithm.local_lr") == 0.05);
    CHECK(c.get_string("server_optimizer.name") == "sgd");
    CHECK(c.get_float("server_optimizer.lr") == 1.0);
    CHECK(c.get_string("aggregator.name") == "mean");
    CHECK(c.get_bool("aggregator.weighted") == false);
    CHECK(c.get_string("comm.backend") == "auto");
    CHECK(c.get_bool("output.save_model") == true);
    // Options of components that were not chosen are absent, not defaulted.
    CHECK_FALSE(c.resolved()["model"]["hidden"]);
    CHECK_FALSE(c.resolved()["model"]["activation"]);
    CHECK_FALSE(c.resolved()["server_optimizer"]["beta"]);
    CHECK_THROWS_AS(c.get_int_list("model.hidden"), std::logic_error);

    const std::string text_out = c.resolved_text();
    INFO(text_out);
    CHECK_THAT(text_out, Contains("rounds: 10"));
    CHECK_THAT(text_out, Contains("local_lr: 0.05"));
    CHECK_THAT(text_out, Contains("name: fedavg"));
    CHECK_THAT(text_out, Contains("name: fashion_mnist"));
    CHECK_THAT(text_out, Contains("num_clients: 10"));
    CHECK_THAT(text_out, Contains("partition:"));
    CHECK_THAT(text_out, !Contains("hidden"));
  }
}

TEST_CASE("config: choosing a component fills exactly its option defaults", "[config]") {
  const Config mlp = parse("model: {name: mlp}\n");
  CHECK(mlp.get_int_list("model.hidden") == std::vector<long long>{200});
  CHECK(mlp.get_string("model.activation") == "relu");
  CHECK_THAT(mlp.resolved_text(), Contains("hidden: [200]"));

  const Config quad = parse("data: {name: quadratic}\nserver_optimizer: {name: adam}\n");
  CHECK(quad.get_int("data.dim") == 10);
  CHECK(quad.get_float_list("data.h").empty());
  CHECK(quad.get_float("data.h_max") == 10.0);
  CHECK_FALSE(quad.resolved()["data"]["path"]);
  CHECK(quad.get_float("server_optimizer.lr") == 0.01);
  CHECK(quad.get_float("server_optimizer.eps") == 1e-3);
  CHECK(quad.get_bool("server_optimizer.bias_correction") == false);
  CHECK_FALSE(quad.resolved()["server_optimizer"]["beta"]);
}

TEST_CASE("config: the resolved text loads back to the same config", "[config]") {
  const Config c = parse(
      "seed: 7\nrounds: 3\ndata: {name: quadratic, dim: 2, h: [1, 10], a: [-1.5, 1e-3], "
      "h_max: inf}\nmodel: {name: quadratic}\nalgorithm: {name: fedavg, local_steps: 4}\n"
      "server_optimizer: {name: momentum, beta: 0.5, form: heavy_ball}\n");
  const Config again = parse(c.resolved_text());
  CHECK(again.resolved_text() == c.resolved_text());
  CHECK(again.get_float_list("data.a") == std::vector<double>{-1.5, 1e-3});
  CHECK(std::isinf(again.get_float("data.h_max")));
  CHECK(again.get_string("server_optimizer.form") == "heavy_ball");
}

TEST_CASE("config: numbers in any spelling the validator accepts can be read back", "[config]") {
  // std::stod accepts "INF", "-inf" and hex floats; the getters must read what was validated
  // instead of failing later inside yaml-cpp.
  const Config c = parse("data: {name: quadratic, h_max: INF, x0: 0x10, a: [-inf, 2.5]}\n");
  CHECK(c.get_float("data.h_max") == INFINITY);
  CHECK(c.get_float("data.x0") == 16.0);
  CHECK(c.get_float_list("data.a") == std::vector<double>{-INFINITY, 2.5});
  CHECK(parse("algorithm: {local_lr: 1e-3}\n").get_float("algorithm.local_lr") == 1e-3);
}

TEST_CASE("config: an unknown key names its full path and the nearest valid key", "[config]") {
  const std::string nested = config_error("algorithm: {local_step: 5}\n");
  INFO(nested);
  CHECK_THAT(nested, StartsWith("test.yaml: unknown key 'algorithm.local_step'"));
  CHECK_THAT(nested, Contains("(did you mean 'algorithm.local_steps'?)"));
  CHECK_THAT(nested,
             Contains("(valid here: name, client_momentum, momentum_form, weight_decay, clip_norm, "
                      "local_steps, local_epochs, batch_size, local_lr, local_momentum, "
                      "local_momentum_state, lr_schedule)"));

  const std::string top = config_error("rounsd: 3\n");
  INFO(top);
  CHECK_THAT(top, StartsWith("test.yaml: unknown key 'rounsd'"));
  CHECK_THAT(top, Contains("(did you mean 'rounds'?)"));
  CHECK_THAT(top, Contains("valid here: seed, rounds, data, model, clients, algorithm"));

  const std::string deep = config_error("data: {partition: {name: dirichlet, alpah: 0.1}}\n");
  INFO(deep);
  CHECK_THAT(deep, Contains("unknown key 'data.partition.alpah'"));
  CHECK_THAT(deep, Contains("(did you mean 'data.partition.alpha'?)"));

  // Nothing close: no suggestion, but still the list of valid keys.
  const std::string far = config_error("clients: {zzzzqqqq: 1}\n");
  INFO(far);
  CHECK_THAT(far, Contains("unknown key 'clients.zzzzqqqq'"));
  CHECK_THAT(far, !Contains("did you mean"));
  CHECK_THAT(far, Contains("(valid here: num_clients, per_round, fraction, sampling, threads, "
                          "state_budget_mib)"));
}

TEST_CASE("config: an option of a sibling component says which components own it", "[config]") {
  CHECK(config_error("server_optimizer: {name: sgd, beta: 0.9}\n") ==
        "test.yaml: key 'server_optimizer.beta' is not an option of server_optimizer.name 'sgd'; "
        "it belongs to: momentum, nesterov");
  // The default component (sgd) is the one the key is checked against when name is omitted.
  CHECK_THAT(config_error("server_optimizer: {beta1: 0.8}\n"),
             Contains("not an option of server_optimizer.name 'sgd'; it belongs to: adam, yogi"));
  CHECK_THAT(config_error("algorithm: {name: sgd, local_steps: 3}\n"),
             Contains("key 'algorithm.local_steps' is not an option of algorithm.name 'sgd'; "
                      "it belongs to: fedavg, fedprox, scaffold, mime, mimelite"));
  CHECK_THAT(config_error("model: {hidden: [64]}\n"),
             Contains("key 'model.hidden' is not an option of model.name 'auto'; it belongs to: "
                      "mlp"));
}

TEST_CASE("config: an unknown component name lists the known names and suggests one", "[config]") {
  CHECK(config_error("algorithm: {name: fedavgg}\n") ==
        "test.yaml: unknown algorithm.name 'fedavgg' (known: sgd, fedavg, fedprox, "
        "scaffold, mime, mimelite, gossip, dsgd, choco_gossip, choco_sgd, "
        "naive_gossip, gradient_tracking); did you mean 'fedavg'?");
  const std::string opt = config_error("server_optimizer: {name: adamw}\n");
  INFO(opt);
  CHECK_THAT(opt, Contains("unknown server_optimizer.name 'adamw' (known: sgd, momentum, "
                           "nesterov, adam, yogi); did you mean 'adam'?"));
  const std::string data = config_error("data: {name: imagenet}\n");
  INFO(data);
  CHECK_THAT(data, Contains("unknown data.name 'imagenet' (known: fashion_mnist, libsvm, "
                            "synthetic_linear, synthetic_fedprox, inline, quadratic)"));
  CHECK_THAT(data, !Contains("did you mean"));
  CHECK_THAT(config_error("algorithm: {name: [fedavg]}\n"),
             Contains("algorithm.name must be a name, got '[fedavg]'"));
}

TEST_CASE("config: wrong types and out-of-range values say what is allowed", "[config]") {
  CHECK(config_error("rounds: 0\n") ==
        "test.yaml: rounds = '0' is not allowed: expected an integer >= 1");
  CHECK(config_error("rounds: abc\n") ==
        "test.yaml: rounds = 'abc' is not allowed: expected an integer >= 1");
  CHECK_THAT(config_error("rounds: 2.5\n"), Contains("rounds = '2.5' is not allowed"));
  CHECK_THAT(config_error("rounds: 99999999999999999999\n"),
             Contains("rounds = '99999999999999999999' is not allowed: expected an integer >= 1"));
  CHECK_THAT(config_error("rounds: [3]\n"),
             Contains("rounds = '[3]' is not allowed: expected an integer >= 1"));
  CHECK_THAT(config_error("seed: -1\n"),
             Contains("seed = '-1' is not allowed: expected an integer >= 0"));

  CHECK(config_error("clients: {fraction: 1.5}\n") ==
        "test.yaml: clients.fraction = '1.5' is not allowed: expected a number in (0, 1]");
  CHECK_THAT(config_error("clients: {fraction: 0}\n"),
             Contains("clients.fraction = '0' is not allowed: expected a number in (0, 1]"));
  CHECK(config_error("algorithm: {name: fedavg, local_lr: -1}\n") ==
        "test.yaml: algorithm.local_lr = '-1' is not allowed: expected a number > 0");
  CHECK_THAT(config_error("algorithm: {local_lr: 0}\n"),
             Contains("algorithm.local_lr = '0' is not allowed: expected a number > 0"));
  CHECK_THAT(config_error("algorithm: {local_lr: nan}\n"),
             Contains("algorithm.local_lr = 'nan' is not allowed"));
  CHECK_THAT(config_error("server_optimizer: {name: momentum, beta: 1.5}\n"),
             Contains("server_optimizer.beta = '1.5' is not allowed: expected a number in [0, 1]"));

  CHECK(config_error("model: {name: mlp, activation: relu6}\n") ==
        "test.yaml: model.activation = 'relu6' is not allowed: expected one of relu | tanh | "
        "sigmoid (did you mean 'relu'?)");
  CHECK_THAT(config_error("comm: {backend: nccl}\n"),
             Contains("comm.backend = 'nccl' is not allowed: expected one of auto | mpi | self"));

  CHECK_THAT(config_error("model: {name: mlp, hidden: [64, 0]}\n"),
             Contains("model.hidden = '[64, 0]' is not allowed: expected a list of integers >= 1, "
                      "e.g. [64, 32]"));
  CHECK_THAT(config_error("model: {name: mlp, hidden: 64}\n"),
             Contains("model.hidden = '64' is not allowed: expected a list of integers >= 1"));
  CHECK_THAT(config_error("data: {name: quadratic, h: [1, x]}\n"),
             Contains("data.h = '[1, x]' is not allowed: expected a list of numbers"));
  CHECK_THAT(config_error("output: {save_model: maybe}\n"),
             Contains("output.save_model = 'maybe' is not allowed: expected true or false"));
  CHECK_THAT(config_error("output: {path: [a, b]}\n"),
             Contains("output.path = '[a, b]' is not allowed: expected a string"));
}

TEST_CASE("config: a section or document that is not a mapping is a usage error", "[config]") {
  CHECK_THAT(config_error("algorithm: fedavg\n"),
             Contains("'algorithm' must be a mapping of keys (see `cohort list`), got 'fedavg'"));
  CHECK(config_error("hello\n") ==
        "test.yaml: '<top level>' must be a mapping of keys (see `cohort list`), got 'hello'");
  // With overrides too: they must not reach yaml-cpp's operator[] on a scalar (which threw a
  // non-usage exception) nor turn a list into a map (which reported "unknown key '0'").
  CHECK(config_error("hello\n", {"seed=1"}) == config_error("hello\n"));
  CHECK_THAT(config_error("[1, 2]\n", {"seed=1"}),
             Contains("'<top level>' must be a mapping of keys"));
  CHECK_THAT(config_error("[a]: 1\n"), Contains("key '[a]' in '<top level>' is not a name"));
}

TEST_CASE("config: key=value overrides apply, and fail like the file would", "[config]") {
  const Config c =
      parse("rounds: 7\nalgorithm: {local_steps: 2}\n", {"algorithm.local_steps=5", "seed=3"});
  CHECK(c.get_int("algorithm.local_steps") == 5);
  CHECK(c.get_int("seed") == 3);
  CHECK(c.get_int("rounds") == 7);
  CHECK(parse("rounds: 7\n", {"rounds=2"}).get_int("rounds") == 2);
  // Later overrides win; a section that is absent in the file is created.
  CHECK(parse("", {"rounds=2", "rounds=4"}).get_int("rounds") == 4);
  CHECK(parse("", {"data.partition.name=dirichlet", "data.partition.alpha=0.25"})
            .get_float("data.partition.alpha") == 0.25);

  const Config mlp = parse("", {"model.name=mlp", "model.hidden=[64,32]"});
  CHECK(mlp.get_int_list("model.hidden") == std::vector<long long>{64, 32});
  CHECK(parse("data: {name: quadratic}\n", {"data.h=[1.5, 2]"}).get_float_list("data.h") ==
        std::vector<double>{1.5, 2.0});

  // The same message as when the key is written in the file.
  const std::string from_override = config_error("", {"algorithm.local_step=5"});
  CHECK(from_override == config_error("algorithm: {local_step: 5}\n"));
  CHECK_THAT(from_override, Contains("did you mean 'algorithm.local_steps'"));
  CHECK(config_error("", {"rounds=0"}) == config_error("rounds: 0\n"));
  CHECK(config_error("", {"server_optimizer.beta=0.9"}) ==
        config_error("server_optimizer: {beta: 0.9}\n"));

  CHECK(config_error("", {"foo"}) == "override 'foo' must look like key.path=value");
  CHECK(config_error("", {"=3"}) == "override '=3' must look like key.path=value");
  CHECK_THAT(config_error("", {"algorithm..local_steps=1"}),
             Contains("override 'algorithm..local_steps=1': empty key in dotted path"));
  CHECK_THAT(config_error("rounds: 3\n", {"rounds.x=1"}),
             Contains("override 'rounds.x=1': 'rounds' is not a mapping"));
  CHECK_THAT(config_error("", {"model.hidden=[64,"}),
             Contains("override 'model.hidden=[64,': value is not valid YAML"));
}

TEST_CASE("config: a YAML syntax error names the file and line", "[config]") {
  const std::string indent = config_error("rounds: 3\n  bad: indent\nseed: 1\n");
  INFO(indent);
  CHECK_THAT(indent, StartsWith("test.yaml:2:"));
  CHECK_THAT(indent, Contains("YAML syntax error"));

  const std::string unclosed = config_error("seed: 1\nrounds: 3\ndata: {name: [\n");
  INFO(unclosed);
  CHECK_THAT(unclosed, StartsWith("test.yaml:"));
  CHECK_THAT(unclosed, Contains("YAML syntax error"));
  CHECK_THAT(unclosed, !StartsWith("test.yaml:1:"));

  CHECK_THAT(usage_error_of([] {
               Config::load("/nonexistent/cohort_cfg.yaml", {}, cohort::algo::run_schema());
             }),
             Contains("cannot open config file '/nonexistent/cohort_cfg.yaml'"));
}

TEST_CASE("config: clients.per_round is checked against the population", "[config]") {
  const std::string quad = "data: {name: quadratic, dim: 2}\nclients: {num_clients: 4}\n";
  CHECK(semantic_error(quad, {"clients.per_round=5"}) ==
        "clients.per_round = 5 exceeds clients.num_clients = 4");
  CHECK(cohort::algo::clients_per_round(parse(quad, {"clients.per_round=4"}), 4) == 4);
  CHECK(cohort::algo::clients_per_round(parse(quad, {"clients.fraction=0.5"}), 4) == 2);
  CHECK(cohort::algo::clients_per_round(parse(quad, {"clients.fraction=0.01"}), 4) == 1);
}

TEST_CASE("config: model and partition must fit the data", "[config]") {
  const std::string fedprox =
      "data: {name: synthetic_fedprox, dim: 5, classes: 3, min_samples: 10}\n"
      "clients: {num_clients: 2}\nmodel: {name: linear}\n";
  CHECK_THAT(semantic_error(fedprox),
             StartsWith("model.name = linear is least-squares regression; this data has class "
                        "labels"));

  const std::string linear =
      "data: {name: synthetic_linear, dim: 3, samples_per_client: 5}\nclients: {num_clients: 2}\n";
  CHECK(semantic_error(linear, {"data.partition.name=dirichlet"}) ==
        "data.partition.name = dirichlet needs class labels; regression data allows iid or "
        "natural");
  CHECK_THAT(semantic_error(linear, {"data.partition.name=shards"}),
             StartsWith("data.partition.name = shards needs class labels"));
  CHECK(semantic_error(linear, {"model.name=mlp"}) ==
        "model.name = mlp needs class labels; regression data allows linear");
  CHECK(semantic_error(linear, {"model.name=quadratic"}) ==
        "model.name = quadratic needs data.name = quadratic");
  // The same data with fitting choices builds.
  CHECK(cohort::algo::make_problem(parse(linear, {"data.partition.name=iid"}))->num_clients() == 2);

  CHECK_THAT(semantic_error("data: {name: quadratic}\nmodel: {name: logreg}\n"),
             Contains("model.name must be auto or quadratic, not logreg"));
  CHECK_THAT(semantic_error("data: {name: quadratic, partition: {name: iid}}\n"),
             Contains("data.partition.name must be auto or natural, not iid"));
}

TEST_CASE("config: quadratic h and a lists must match the population", "[config]") {
  const std::string quad = "data: {name: quadratic, dim: 3}\nclients: {num_clients: 2}\n";
  CHECK(semantic_error(quad, {"data.h=[1, 2, 3]"}) ==
        "data.h has 3 values; expected clients.num_clients = 2 (one per client) or "
        "num_clients*dim = 6, or [] for random values");
  CHECK_THAT(semantic_error(quad, {"data.a=[1]"}), StartsWith("data.a has 1 values"));
  CHECK_THAT(semantic_error(quad, {"data.h=[1, -2]"}),
             Contains("data.h: curvature -2 is not allowed"));
  CHECK_THAT(semantic_error(quad, {"data.h_min=5", "data.h_max=2"}),
             Contains("data.h_min = 5 must not exceed data.h_max = 2"));
  // One value per client and one per coordinate are both accepted.
  CHECK(cohort::algo::make_problem(parse(quad, {"data.h=[1, 2]"}))->num_params() == 3);
  CHECK(cohort::algo::make_problem(parse(quad, {"data.h=[1, 2, 3, 4, 5, 6]"}))->num_params() == 3);
}

TEST_CASE("config: libsvm data needs an existing path", "[config]") {
  CHECK(semantic_error("data: {name: libsvm}\n") == "data.path is required for data.name = libsvm");
  CHECK_THAT(semantic_error("data: {name: libsvm, path: /nonexistent/cohort_test.svm}\n"),
             StartsWith("cannot open LIBSVM file /nonexistent/cohort_test.svm"));
}

TEST_CASE("config: fedavg needs local steps or local epochs", "[config]") {
  CHECK_THAT(semantic_error("data: {name: quadratic, dim: 1}\n",
                            {"algorithm.local_steps=0", "algorithm.local_epochs=0"}),
             StartsWith("algorithm.local_steps and algorithm.local_epochs are both 0"));
}

// 20 rows whose one feature is the label (0..4, four rows each, interleaved), 5 clients of which
// attack.count = 2 are Byzantine; shards of one label block per honest client.
const char* kByzantineData =
    "seed: 5\n"
    "data: {name: inline, task: classification, dim: 1,\n"
    "       x: [0,1,2,3,4, 0,1,2,3,4, 0,1,2,3,4, 0,1,2,3,4],\n"
    "       y: [0,1,2,3,4, 0,1,2,3,4, 0,1,2,3,4, 0,1,2,3,4],\n"
    "       partition: {name: shards, shards_per_client: 1}}\n"
    "model: {name: logreg}\n"
    "clients: {num_clients: 5, per_round: 5}\n"
    "attack: {name: alie, count: 2}\n"
    "algorithm: {name: sgd}\n";

TEST_CASE("config: data.partition.byzantine_data gives the honest clients every row",
          "[config][partition]") {
  cohort::attack::AttackOptions o;
  o.name = "alie";
  o.count = 2;
  const std::vector<int> byz = cohort::attack::byzantine_clients(5, 5, o);
  REQUIRE(byz.size() == 2u);
  const auto is_byz = [&](int c) { return std::find(byz.begin(), byz.end(), c) != byz.end(); };
  // The labels each client holds, read back through the problem (feature = label).
  const auto labels_of = [](cohort::algo::Problem& p, int c) {
    std::vector<int> l;
    for (std::int64_t i = 0; i < p.client_samples(c); ++i)
      l.push_back(static_cast<int>(p.sample_input(c, i)[0]));
    std::sort(l.begin(), l.end());
    return l;
  };
  for (const std::string share : {"none", "iid"}) {
    INFO(share);
    auto p = cohort::algo::make_problem(parse(kByzantineData, {"data.partition.byzantine_data=" + share}));
    std::vector<int> honest_labels;
    for (int c = 0; c < 5; ++c) {
      const auto l = labels_of(*p, c);
      if (is_byz(c)) {
        // none: no rows; iid: a third of the 20 rows (h = 3 honest parts of 6, 7, 7)
        if (share == "none") REQUIRE(l.empty());
        else REQUIRE((l.size() == 6u || l.size() == 7u));
        continue;
      }
      // Honest: the 20 label-sorted rows cut into 3 contiguous blocks at 0, 6, 13, 20.
      const std::vector<std::vector<int>> blocks = {
          {0, 0, 0, 0, 1, 1}, {1, 1, 2, 2, 2, 2, 3}, {3, 3, 3, 4, 4, 4, 4}};
      REQUIRE(std::find(blocks.begin(), blocks.end(), l) != blocks.end());
      honest_labels.insert(honest_labels.end(), l.begin(), l.end());
    }
    std::sort(honest_labels.begin(), honest_labels.end());
    REQUIRE(honest_labels == std::vector<int>{0,0,0,0, 1,1,1,1, 2,2,2,2, 3,3,3,3, 4,4,4,4});
  }
  // same: the 5 clients share the 20 rows, 4 each, one label each.
  auto same = cohort::algo::make_problem(parse(kByzantineData));
  for (int c = 0; c < 5; ++c) REQUIRE(same->client_samples(c) == 4);
  // No attack: no Byzantine client, so the key changes nothing.
  auto calm = cohort::algo::make_problem(
      parse(kByzantineData, {"attack.name=none", "data.partition.byzantine_data=iid"}));
  for (int c = 0; c < 5; ++c) REQUIRE(calm->client_samples(c) == 4);
}

TEST_CASE("config: data.partition.byzantine_data refuses what it cannot express",
          "[config][partition]") {
  CHECK_THAT(semantic_error(kByzantineData, {"data.partition.byzantine_data=none",
                                             "attack.name=labelflip"}),
             Contains("attack.name = labelflip trains on its clients' rows"));
  CHECK_THAT(semantic_error(kByzantineData, {"data.partition.byzantine_data=none",
                                             "data.client_test_fraction=0.5"}),
             Contains("no rows to hold out"));
  CHECK_THAT(semantic_error(kByzantineData, {"data.partition.byzantine_data=none",
                                             "aggregator.weighted=true"}),
             Contains("weigh their messages by 0"));
  std::string pool = kByzantineData;
  pool.replace(pool.find("name: shards, shards_per_client: 1"), 34,
               "name: pool, byzantine_data: iid");
  CHECK_THAT(semantic_error(pool), Contains("needs stored rows"));
  CHECK_THAT(semantic_error(kByzantineData, {"data.partition.byzantine_data=iid",
                                             "attack.count=5"}),
             Contains("all 5 clients are Byzantine"));
  const char* synthetic =
      "data: {name: synthetic_linear, dim: 3, samples_per_client: 4, "
      "partition: {byzantine_data: iid}}\n"
      "model: {name: linear}\nclients: {num_clients: 4}\nattack: {name: alie, count: 1}\n"
      "algorithm: {name: sgd}\n";
  CHECK_THAT(semantic_error(synthetic), Contains("needs a partition of the rows"));
  CHECK_THAT(semantic_error("data: {name: quadratic, dim: 2, partition: {byzantine_data: none}}\n"
                            "clients: {num_clients: 4}\nattack: {name: ipm, count: 1}\n"),
             Contains("data.partition.byzantine_data must be same"));
}

TEST_CASE("config: edit_distance and nearest on exact cases", "[config][schema]") {
  using cohort::edit_distance;
  using cohort::nearest;
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("sitting", "kitten") == 3);
  CHECK(edit_distance("flaw", "lawn") == 2);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("rounds", "rounds") == 0);
  CHECK(edit_distance("rounsd", "rounds") == 2);  // a transposition is two edits
  CHECK(edit_distance("local_step", "local_steps") == 1);

  const std::vector<std::string> keys = {"name", "local_steps", "local_epochs", "batch_size",
                                         "local_lr"};
  CHECK(nearest("local_step", keys) == "local_steps");
  CHECK(nearest("local_epoch", keys) == "local_epochs");
  CHECK(nearest("lr", keys) == "local_lr");  // substring counts as close
  CHECK(nearest("batchsize", keys) == "batch_size");
  CHECK(nearest("xyzzyqwerty", keys).empty());
  CHECK(nearest("anything", {}).empty());
  CHECK(nearest("ab", {"ac", "ad"}) == "ac");  // ties go to the first candidate
}

TEST_CASE("config: schema markdown and listing cover every key", "[config][schema]") {
  const std::string md = cohort::schema_markdown(cohort::algo::run_schema());
  CHECK_THAT(md, Contains("| `algorithm.local_lr` | float > 0 | `0.05` | local learning rate eta_l "
                          "(the base rate of algorithm.lr_schedule) |"));
  CHECK_THAT(md, Contains("| `rounds` | int >= 1 | `10` | communication rounds |"));
  CHECK_THAT(md, Contains("### `server_optimizer`"));
  // Enum alternatives are separated by escaped pipes, so each row keeps its four cells.
  CHECK_THAT(md, Contains("| `model.activation` | relu \\| tanh \\| sigmoid | `relu` |"));
  CHECK_THAT(md, Contains("| `algorithm.name` | sgd \\| fedavg \\| fedprox \\| scaffold "
                          "\\| mime \\| mimelite \\| gossip \\| dsgd \\| choco_gossip \\| choco_sgd "
                          "\\| naive_gossip \\| gradient_tracking | `fedavg` | which component |"));
  for (std::size_t start = 0; start < md.size();) {
    const std::size_t end = md.find('\n', start);
    const std::string line = md.substr(start, end - start);
    start = end == std::string::npos ? md.size() : end + 1;
    if (line.empty() || line[0] != '|') continue;
    std::size_t cells = 0;
    for (std::size_t i = 0; i < line.size(); ++i)
      if (line[i] == '|' && (i == 0 || line[i - 1] != '\\')) ++cells;
    INFO(line);
    CHECK(cells == 5);  // | key | type | default | meaning |
  }

  const std::string listing = cohort::schema_listing(cohort::algo::run_schema());
  CHECK_THAT(listing, Contains("algorithm.name: fedavg (default)"));
  CHECK_THAT(listing, Contains("algorithm.name: sgd -"));
  for (const char* opt : {"sgd", "momentum", "nesterov", "adam", "yogi"})
    CHECK_THAT(listing, Contains(std::string("server_optimizer.name: ") + opt));
  CHECK_THAT(listing, Contains("local_lr"));
}
