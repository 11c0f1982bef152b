// The exchange step on one rank: error feedback, the majority vote, PowerSGD in mode reduce.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "comm/communicator.h"
#include "core/errors.h"
#include "exchange/exchange.h"
#include "robust/aggregator.h"

using namespace cohort;

namespace {

exchange::ExchangeOptions options(const std::string& compressor) {
  exchange::ExchangeOptions o;
  o.compressor.name = compressor;
  return o;
}

std::vector<float> random_vector(std::int64_t n, std::uint32_t round, std::uint32_t client) {
  Rng rng(11, round, client, Purpose::kTest);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// An exchange whose client store holds every client (one rank owns them all).
struct TestExchange {
  ClientStore store;
  std::unique_ptr<exchange::Exchange> ex;
  TestExchange(exchange::ExchangeOptions o, comm::Communicator& comm,
               const std::vector<LayerView>& layers, std::uint64_t seed, int num_clients)
      : store(0, num_clients),
        ex(exchange::make_exchange(std::move(o), comm, layers, seed, num_clients, store)) {}
  exchange::Exchange* operator->() { return ex.get(); }
};

}  // namespace

TEST_CASE("exchange: per-client state lives in the client store, in the slots it declares",
          "[exchange][store]") {
  const std::vector<LayerView> layers = {{"w", 0, 8, 5}, {"b", 40, 8, 1}};
  auto comm = comm::make_self_communicator();
  const auto slots = [](const ClientStore& st) {
    std::string out;
    for (const auto& s : st.slots()) out += s.name + ":" + std::to_string(s.width) + " ";
    return out;
  };
  auto o = options("powersgd");
  o.compressor.mode = "per_client";
  o.compressor.rank = 2;
  o.error_feedback = true;
  {
    TestExchange ex(o, *comm, layers, 3, 4);
    // d = 48 floats of error memory; PowerSGD keeps Q (cols x rank = 5 x 2) of the matrix layer
    // and a flag saying Q was set.
    REQUIRE(slots(ex.store) == "error:48 compressor:11 ");
    ex->begin_round(0, std::vector<int>{1, 3});
    auto u = random_vector(48, 0, 1);
    ex->submit(1, u, 1.0);
    u = random_vector(48, 0, 3);
    ex->submit(3, u, 1.0, /*byzantine=*/true);  // Byzantine clients keep no error memory
    std::vector<float> g(48);
    REQUIRE(ex->finish(g.data(), 2.0));
    REQUIRE(ex.store.clients(0) == 1);
    REQUIRE(ex.store.find(0, 1).data() == ex->error_memory(1).data());
    REQUIRE(ex->error_memory(3).empty());
    REQUIRE(ex.store.clients(1) == 2);  // both clients' compressor state
  }
  // Error feedback with compressor none has nothing to keep: no slot, no memory.
  auto none = options("none");
  none.error_feedback = true;
  TestExchange plain(none, *comm, layers, 3, 4);
  REQUIRE(slots(plain.store).empty());
}

TEST_CASE("exchange: error feedback conserves sum of sent + memory = sum of messages", "[exchange]") {
  // One client, one round after another: sum_t decode(C(p_t)) + e_T = sum_t u_t.
  const std::vector<LayerView> layers = {{"w", 0, 8, 5}, {"b", 40, 8, 1}};
  // PowerSGD per_client forms p and updates e inside its products (Note [PowerSGD passes]).
  for (const std::string label :
       {"topk", "sign", "randk", "qsgd", "powersgd", "powersgd per_client"}) {
    const std::string name = label.substr(0, label.find(' '));
    auto o = options(name);
    o.error_feedback = true;
    o.compressor.k = 3;
    o.compressor.scale = "l1";
    o.compressor.mode = label == "powersgd per_client" ? "per_client" : "reduce";
    o.compressor.rank = 1;
    auto comm = comm::make_self_communicator();
    TestExchange ex(o, *comm, layers, 3, 1);
    std::vector<double> sent(48, 0.0), sum_u(48, 0.0);
    std::vector<float> g(48);
    for (std::uint32_t t = 0; t < 25; ++t) {
      auto u = random_vector(48, t, 0);
      for (int i = 0; i < 48; ++i) sum_u[i] += u[i];
      ex->begin_round(t);
      ex->submit(0, u, 1.0);
      REQUIRE(ex->finish(g.data(), 1.0));
      for (int i = 0; i < 48; ++i) sent[i] += g[i];
    }
    const auto e = ex->error_memory(0);
    REQUIRE(e.size() == 48);
    double worst = 0, norm_e = 0;
    for (int i = 0; i < 48; ++i) {
      worst = std::max(worst, std::fabs(sent[i] + e[i] - sum_u[i]));
      norm_e += e[i] * e[i];
    }
    INFO(label << ": max |sum sent + memory - sum messages| = " << worst);
    REQUIRE(worst < 1e-4);  // 25 rounds of float32 rounding on values of size ~10
    if (name != "powersgd") REQUIRE(norm_e > 0);  // the compressor really lost something
  }
}

TEST_CASE("exchange: a too large or non-finite p fails the round, with or without EF", "[exchange]") {
  // The check is on p = u + e (with error feedback in per_client mode, inside the encoding).
  const std::vector<LayerView> layers = {{"w", 0, 6, 20}, {"b", 120, 6, 1}};
  for (const std::string mode : {"per_client", "reduce"})
    for (const bool ef : {false, true})
      for (const int at : {7, 125}) {  // in the matrix, in the bias
        INFO("mode " << mode << ", error feedback " << ef << ", coordinate " << at);
        auto o = options("powersgd");
        o.compressor.mode = mode;
        o.compressor.rank = 2;
        o.error_feedback = ef;
        std::vector<float> g(126);
        for (const float bad : {std::ldexp(1.0f, 40), -std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::quiet_NaN()}) {
          auto comm = comm::make_self_communicator();
          TestExchange ex(o, *comm, layers, 3, 1);
          ex->begin_round(0);  // a good round first: the memory is not zero
          auto u = random_vector(126, 0, 0);
          ex->submit(0, u, 1.0);
          REQUIRE(ex->finish(g.data(), 1.0));
          ex->begin_round(1);
          u = random_vector(126, 1, 0);
          const float e_at = ef && mode == "per_client" ? ex->error_memory(0)[at] : 0.0f;
          u[at] = bad - e_at;  // p = u + e = bad (2^40 - e rounds back to 2^40)
          ex->submit(0, u, 1.0);
          REQUIRE_FALSE(ex->finish(g.data(), 1.0));
        }
      }
}

TEST_CASE("exchange: the size check sees p even where PowerSGD's output stays below 2^40",
          "[exchange]") {
  // M = 2^40 I (2 x 2) at rank 1: P̂ = Q / |Q| and the decoded message 2^40 P̂ P̂^T has every
  // entry below 2^40, so only the check of p itself (with error feedback, the max |p| the
  // encoding reports) stops the round.
  const std::vector<LayerView> layers = {{"w", 0, 2, 2}};
  for (const std::string mode : {"per_client", "reduce"})
    for (const bool ef : {false, true}) {
      INFO("mode " << mode << ", error feedback " << ef);
      auto o = options("powersgd");
      o.compressor.mode = mode;
      o.compressor.rank = 1;
      o.error_feedback = ef;
      auto comm = comm::make_self_communicator();
      TestExchange ex(o, *comm, layers, 3, 1);
      ex->begin_round(0);
      const float big = std::ldexp(1.0f, 40);
      std::vector<float> u = {big, 0, 0, big}, g(4);
      ex->submit(0, u, 1.0);
      REQUIRE_FALSE(ex->finish(g.data(), 1.0));
      for (const float x : g) REQUIRE(std::fabs(x) < big);  // what the sum saw was in range
    }
}

TEST_CASE("exchange: majority vote is sign(sum of signs) with ties to +1", "[exchange]") {
  const std::vector<LayerView> layers = {{"w", 0, 4, 1}};
  auto o = options("sign");
  o.aggregator = robust::AggregatorKind::kMajority;
  auto comm = comm::make_self_communicator();
  TestExchange ex(o, *comm, layers, 1, 4);
  ex->begin_round(0);
  std::vector<std::vector<float>> msgs = {
      {1, -2, 0.5, -1}, {-3, -1, 2, 1}, {2, 5, -1, -1}, {-1, 4, -7, 1}};
  for (int c = 0; c < 4; ++c) ex->submit(c, msgs[c], 1.0);
  std::vector<float> g(4);
  REQUIRE(ex->finish(g.data(), 4.0));
  // votes: (+1-1+1-1) = 0 -> +1; (-1-1+1+1) = 0 -> +1; (+1+1-1-1) = 0 -> +1; (-1+1-1+1) = 0
  REQUIRE(g == std::vector<float>{1, 1, 1, 1});
  ex->begin_round(1);
  std::vector<std::vector<float>> three = {{1, -2, -0.5, 0}, {-3, -1, 2, -1}, {2, -5, -1, -1}};
  for (int c = 0; c < 3; ++c) ex->submit(c, three[c], 1.0);
  REQUIRE(ex->finish(g.data(), 3.0));
  REQUIRE(g == std::vector<float>{1, -1, -1, -1});  // sign(0) = +1 in the first message
  REQUIRE(ex->client_bits()[0] == 4);                // one bit per coordinate
}

TEST_CASE("exchange: weighted mean through the exact sum", "[exchange]") {
  const std::vector<LayerView> layers = {{"w", 0, 3, 1}};
  auto comm = comm::make_self_communicator();
  TestExchange ex(options("none"), *comm, layers, 1, 2);
  ex->begin_round(0);
  std::vector<float> a = {1, 2, 3}, b = {5, -2, 7};
  ex->submit(0, a, 1.0);
  ex->submit(1, b, 3.0);
  std::vector<float> g(3);
  REQUIRE(ex->finish(g.data(), 4.0));
  REQUIRE(g == std::vector<float>{4, -1, 6});  // (1 + 15)/4, (2 - 6)/4, (3 + 21)/4
  REQUIRE(ex->uplink_bits() == 2 * 3 * 32);
}

TEST_CASE("exchange: PowerSGD reduce with full rank returns the mean of the messages", "[exchange]") {
  // Two clients, a 3 x 2 matrix layer and a bias: rank 2 = min(rows, cols) spans the mean exactly.
  const std::vector<LayerView> layers = {{"w", 0, 3, 2}, {"b", 6, 3, 1}};
  auto o = options("powersgd");
  o.compressor.rank = 2;
  auto comm = comm::make_self_communicator();
  TestExchange ex(o, *comm, layers, 4, 2);
  ex->begin_round(0);
  std::vector<float> m1 = {1, 2, 3, 4, 5, 6, 1, 1, 1}, m2 = {0, -1, 2, 1, -3, 2, 3, 5, 7};
  ex->submit(0, m1, 1.0);
  ex->submit(1, m2, 1.0);
  std::vector<float> g(9);
  REQUIRE(ex->finish(g.data(), 2.0));
  for (int i = 0; i < 9; ++i) REQUIRE(g[i] == Approx(0.5 * (m1[i] + m2[i])).margin(1e-5));
  // Wire per client: r'(rows + cols) = 2 * 5 floats for w, 3 floats for b.
  REQUIRE(ex->client_bits()[0] == 32 * (10 + 3));
}

TEST_CASE("exchange: weighted PowerSGD reduce equals repeating each message weight times",
          "[exchange]") {
  // Weights 1 and 3 against M1 once and M2 three times at weight 1: both P = sum_i w_i M_i Q and
  // Q = sum_i w_i M_i^T P_hat / sum_i w_i are the same exact sums, so the results are bitwise
  // equal. Rank 1 < rank of the weighted mean, so an unweighted P would point elsewhere.
  const std::vector<LayerView> layers = {{"w", 0, 3, 2}, {"b", 6, 3, 1}};
  auto o = options("powersgd");
  o.compressor.rank = 1;
  const std::vector<float> m1 = {2, -1, 1, 3, 0, 2, 1, 1, 1}, m2 = {1, 1, -2, 0, 3, 1, 3, 5, 7};
  auto run = [&](const std::vector<std::pair<const std::vector<float>*, double>>& msgs) {
    auto comm = comm::make_self_communicator();
    TestExchange ex(o, *comm, layers, 4, static_cast<int>(msgs.size()));
    ex->begin_round(0);
    double total = 0;
    for (std::size_t c = 0; c < msgs.size(); ++c) {
      std::vector<float> m = *msgs[c].first;
      ex->submit(static_cast<int>(c), m, msgs[c].second);
      total += msgs[c].second;
    }
    std::vector<float> g(9);
    REQUIRE(ex->finish(g.data(), total));
    return g;
  };
  const auto weighted = run({{&m1, 1.0}, {&m2, 3.0}});
  const auto repeated = run({{&m1, 1.0}, {&m2, 1.0}, {&m2, 1.0}, {&m2, 1.0}});
  const auto unweighted = run({{&m1, 1.0}, {&m2, 1.0}});
  REQUIRE(weighted == repeated);
  REQUIRE(weighted != unweighted);
  for (int i = 6; i < 9; ++i)  // the bias travels exactly: its weighted mean
    REQUIRE(weighted[i] == static_cast<float>((m1[i] + 3.0 * m2[i]) / 4.0));
}

TEST_CASE("exchange: error feedback keeps no memory with compressor none", "[exchange]") {
  // none sends p exactly, so e = p - p = 0: no O(d) memory per client, and an overflowing message
  // (inf - inf) cannot leave a NaN memory that would poison the client's later messages.
  const std::vector<LayerView> layers = {{"w", 0, 3, 1}};
  for (const exchange::Plan plan : {exchange::Plan::kReduce, exchange::Plan::kGather}) {
    INFO(exchange::plan_name(plan));
    auto o = options("none");
    o.error_feedback = true;
    o.plan = plan;
    auto comm = comm::make_self_communicator();
    TestExchange ex(o, *comm, layers, 1, 1);
    ex->begin_round(0);
    std::vector<float> a = {1, 2, 3};
    ex->submit(0, a, 1.0);
    std::vector<float> g(3);
    REQUIRE(ex->finish(g.data(), 1.0));
    REQUIRE(g == std::vector<float>{1, 2, 3});
    REQUIRE(ex->error_memory(0).empty());
    REQUIRE(ex->describe().find("error feedback has nothing to keep") != std::string::npos);
  }
}

TEST_CASE("exchange: a non-finite message is caught even when the compressor hides it", "[exchange]") {
  // sign encodes NaN as a bit and randk may not keep the NaN coordinate: the round must still
  // be reported invalid (docs/algorithms.md §3: mean propagates them and the run stops as
  // diverged).
  const std::vector<LayerView> layers = {{"w", 0, 6, 1}};
  for (const std::string name : {"sign", "randk", "qsgd", "none"}) {
    auto o = options(name);
    o.compressor.k = 1;
    o.compressor.norm = "max";
    auto comm = comm::make_self_communicator();
    TestExchange ex(o, *comm, layers, 1, 2);
    ex->begin_round(0);
    std::vector<float> good = {1, 2, 3, 4, 5, 6}, bad = {1, NAN, 3, 4, 5, 6};
    ex->submit(0, good, 1.0);
    ex->submit(1, bad, 1.0);
    std::vector<float> g(6);
    INFO(name);
    REQUIRE_FALSE(ex->finish(g.data(), 2.0));
    ex->begin_round(1);  // the next round starts clean
    std::vector<float> good2 = {1, 2, 3, 4, 5, 6};
    ex->submit(0, good2, 1.0);
    REQUIRE(ex->finish(g.data(), 1.0));
  }
}

TEST_CASE("exchange: the majority vote counts the sent sign bit, also for -0", "[exchange]") {
  const std::vector<LayerView> layers = {{"w", 0, 2, 1}};
  auto o = options("sign");
  o.aggregator = robust::AggregatorKind::kMajority;
  auto comm = comm::make_self_communicator();
  TestExchange ex(o, *comm, layers, 1, 1);
  ex->begin_round(0);
  std::vector<float> m = {-0.0f, -1e-30f};
  ex->submit(0, m, 1.0);
  std::vector<float> g(2);
  REQUIRE(ex->finish(g.data(), 1.0));
  REQUIRE(g[0] == 1.0f);   // sign(-0) = sign(0) = +1
  REQUIRE(g[1] == -1.0f);
}

TEST_CASE("exchange: make_exchange picks the plan's class from the resolved options",
          "[exchange]") {
  const std::vector<LayerView> layers = {{"w", 0, 4, 3}};  // d = 12
  auto comm = comm::make_self_communicator();
  const auto plan_of = [&](const exchange::ExchangeOptions& o) {
    const std::string what = TestExchange(o, *comm, layers, 1, 4)->describe();
    return what.substr(0, what.find(" ("));
  };
  auto o = options("none");
  REQUIRE(plan_of(o) == "reduce");
  o.plan = exchange::Plan::kGather;
  REQUIRE(plan_of(o) == "gather");
  o.plan = exchange::Plan::kShard;  // a sum has no shard form
  REQUIRE_THROWS_AS(TestExchange(o, *comm, layers, 1, 4), std::logic_error);
  auto p = options("powersgd");  // mode reduce: its own plan, whatever o.plan says
  REQUIRE(TestExchange(p, *comm, layers, 1, 4)->describe().find("PowerSGD") !=
          std::string::npos);
  // A robust rule: gather, or shard when plan auto finds a round's messages above the budget.
  auto r = options("none");
  r.aggregator = robust::AggregatorKind::kCm;
  r.rule.name = "cm";
  r.per_round = 4;
  REQUIRE_THROWS_AS(TestExchange(r, *comm, layers, 1, 4), std::logic_error);  // reduce
  r.plan = exchange::Plan::kGather;
  r.auto_plan = true;
  r.memory_budget = 4 * 12 * 4;  // exactly one round's messages: still fits
  REQUIRE(plan_of(r) == "gather");
  r.memory_budget -= 1;
  REQUIRE(plan_of(r) == "shard");
  r.aggregator = robust::AggregatorKind::kZeno;  // zeno cannot be sharded
  r.rule.name = "zeno";
  REQUIRE(plan_of(r) == "gather");
}

TEST_CASE("exchange: aggregator names and kinds convert both ways", "[exchange]") {
  for (const char* name :
       {"mean", "majority", "cm", "tm", "krum", "multikrum", "gm", "cclip", "bulyan", "zeno"}) {
    const auto kind = robust::aggregator_kind(name);
    REQUIRE(std::string(robust::aggregator_name(kind)) == name);
    const bool sum = std::string(name) == "mean" || std::string(name) == "majority";
    REQUIRE(robust::is_robust(kind) == !sum);
  }
  REQUIRE_THROWS_AS(robust::aggregator_kind("median"), UsageError);
}
