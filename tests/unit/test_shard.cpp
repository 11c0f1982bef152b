// The shard plan's building blocks (Note [Chunked sums]): the chunk tree gives the same bits for
// every split of the chunks over ranks, and every shardable rule run on coordinate blocks over
// P simulated ranks (threads with an in-process all-gather) gives bitwise the whole-vector
// result, selections and scores included.
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "robust/aggregator.h"
#include "robust/chunk_tree.h"
#include "robust/gm.h"
#include "robust/thread_gather.h"

using namespace cohort;
using namespace cohort::robust;

namespace {

// Runs body(r) on P threads.
void on_ranks(int P, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r) threads.emplace_back(body, r);
  for (auto& t : threads) t.join();
}

// The fixed tree of Note [Chunked sums], written out: node (l, i) = left + right, or left alone.
double tree_value(const std::vector<double>& leaves, int l, std::int64_t i) {
  const auto C = static_cast<std::int64_t>(leaves.size());
  if (l == 0) return leaves[static_cast<std::size_t>(i)];
  const double left = tree_value(leaves, l - 1, 2 * i);
  if (((2 * i + 1) << (l - 1)) >= C) return left;
  return left + tree_value(leaves, l - 1, 2 * i + 1);
}

}  // namespace

TEST_CASE("shard: the chunk tree adds in the same fixed order for every split over ranks") {
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (std::int64_t C : {1, 2, 3, 5, 7, 8, 9, 13, 64, 100}) {
    // Terms of very different sizes, so that the order of the additions shows in the bits.
    std::vector<double> leaves(static_cast<std::size_t>(C) * 2);
    for (std::size_t k = 0; k < leaves.size(); ++k)
      leaves[k] = u(gen) * std::ldexp(1.0, static_cast<int>(gen() % 60));
    std::vector<double> lane0(static_cast<std::size_t>(C)), lane1(lane0.size());
    for (std::int64_t c = 0; c < C; ++c) {
      lane0[c] = leaves[2 * c];
      lane1[c] = leaves[2 * c + 1];
    }
    int root = 0;
    while ((std::int64_t{1} << root) < C) ++root;
    const double want0 = tree_value(lane0, root, 0), want1 = tree_value(lane1, root, 0);

    ChunkTree whole(0, C, 2);
    for (std::int64_t c = 0; c < C; ++c) whole.push(&leaves[2 * c]);
    const auto local = whole.total({});
    CHECK(local[0] == want0);
    CHECK(local[1] == want1);

    for (int P : {1, 2, 3, 4, 5}) {
      ThreadGather gather(P);
      std::vector<std::vector<double>> got(static_cast<std::size_t>(P));
      on_ranks(P, [&](int r) {
        // Uneven blocks, some empty when P > C.
        const std::int64_t a = C * r / P, b = C * (r + 1) / P;
        ChunkTree t(a, C, 2);
        for (std::int64_t c = a; c < b; ++c) t.push(&leaves[2 * c]);
        got[r] = t.total(gather.for_thread(r));
      });
      for (int r = 0; r < P; ++r) {
        INFO("C = " << C << ", P = " << P << ", rank " << r);
        CHECK(got[r][0] == want0);
        CHECK(got[r][1] == want1);
      }
    }
  }
}

TEST_CASE("shard: a chunk no rank summed is an error, not a silent zero") {
  ChunkTree t(0, 3, 1);
  const double v = 1;
  t.push(&v);
  t.push(&v);
  CHECK_THROWS_WITH(t.total({}), Catch::Contains("chunk 2 of 3"));
}

namespace {

struct Case {
  const char* label;
  AggregatorOptions o;
  bool weighted = false;
  GmPath gm_path = GmPath::kAuto;  // gm: a forced path (Note [gm path choice])
  std::unique_ptr<Aggregator> make() const {
    if (gm_path == GmPath::kAuto) return make_aggregator(o);
    return std::make_unique<GeometricMedian>(o.iters, o.nu, o.init == "mean", gm_path);
  }
};

std::vector<Case> shard_cases() {
  std::vector<Case> cases;
  auto add = [&](const char* label, auto set, bool weighted = false,
                 GmPath gm_path = GmPath::kAuto) {
    AggregatorOptions o;
    set(o);
    cases.push_back({label, o, weighted, gm_path});
  };
  add("cm", [](auto& o) { o.name = "cm"; });
  add("tm b=2", [](auto& o) { o.name = "tm"; o.b = 2; });
  add("krum f=2", [](auto& o) { o.name = "krum"; o.f = 2; });
  add("multikrum f=2", [](auto& o) { o.name = "multikrum"; o.f = 2; });
  add("gm T=4 zero", [](auto& o) { o.name = "gm"; o.iters = 4; });
  add("gm T=3 mean weighted", [](auto& o) { o.name = "gm"; o.iters = 3; o.init = "mean"; }, true);
  add("gm gram path T=2", [](auto& o) { o.name = "gm"; o.iters = 2; }, false, GmPath::kGram);
  add("gm direct path T=4 zero", [](auto& o) { o.name = "gm"; o.iters = 4; }, false,
      GmPath::kDirect);
  add("gm direct path T=3 mean weighted",
      [](auto& o) { o.name = "gm"; o.iters = 3; o.init = "mean"; }, true, GmPath::kDirect);
  add("gm direct path T=1", [](auto& o) { o.name = "gm"; o.iters = 1; }, false, GmPath::kDirect);
  add("cclip L=3", [](auto& o) { o.name = "cclip"; o.iters = 3; o.tau = 2.0; });
  add("bulyan f=2", [](auto& o) { o.name = "bulyan"; o.f = 2; });
  add("krum f=1 + bucketing 2", [](auto& o) { o.name = "krum"; o.f = 1; o.bucket = 2; });
  add("cclip + bucketing 3", [](auto& o) { o.name = "cclip"; o.iters = 2; o.tau = 1.0; o.bucket = 3; });
  return cases;
}

}  // namespace

TEST_CASE("shard: every shardable rule on coordinate blocks equals the whole-vector rule") {
  // d spans four chunks, the last one short; 11 rows: 8 honest near a common point, 3 outliers.
  const int n = 11;
  const std::int64_t d = 3 * kSumChunk + 123;
  std::mt19937 gen(11);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> data(static_cast<std::size_t>(n * d));
  for (int i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      data[i * d + k] = (i < 8 ? 0.5f : -3.0f) + 0.3f * noise(gen) + 1e-3f * static_cast<float>(k % 17);
  std::vector<int> clients(n);
  std::vector<double> weights(n);
  for (int i = 0; i < n; ++i) {
    clients[i] = 3 * i + 1;
    weights[i] = 1.0 + i % 4;
  }
  for (const auto& c : shard_cases()) {
    const std::span<const double> w = c.weighted ? std::span<const double>(weights)
                                                 : std::span<const double>();
    // Whole vectors, two rounds (cclip keeps its previous aggregate).
    auto rule = c.make();
    std::vector<std::vector<float>> want(2, std::vector<float>(static_cast<std::size_t>(d)));
    std::vector<Report> want_rep(2);
    for (std::uint32_t round = 0; round < 2; ++round) {
      const Messages m{data.data(), n, d, clients, w};
      Context ctx;
      ctx.seed = 5;
      ctx.round = round;
      REQUIRE(aggregate(*rule, m, ctx, want[round].data(), want_rep[round]));
    }
    for (int P : {1, 2, 3}) {
      ThreadGather gather(P);
      std::vector<std::vector<float>> got(2, std::vector<float>(static_cast<std::size_t>(d)));
      std::vector<std::vector<Report>> reps(static_cast<std::size_t>(P), std::vector<Report>(2));
      on_ranks(P, [&](int r) {
        const auto [lo, hi] = shard_block(d, r, P);
        const std::int64_t width = hi - lo;
        std::vector<float> block(static_cast<std::size_t>(n * width));
        for (int i = 0; i < n; ++i)
          std::memcpy(block.data() + i * width, data.data() + i * d + lo, sizeof(float) * width);
        auto mine = c.make();
        for (std::uint32_t round = 0; round < 2; ++round) {
          const Messages m{block.data(), n, width, clients, w};
          Context ctx;
          ctx.seed = 5;
          ctx.round = round;
          ctx.shard.offset = lo;
          ctx.shard.d_total = d;
          ctx.shard.gather = gather.for_thread(r);
          REQUIRE(aggregate(*mine, m, ctx, got[round].data() + lo, reps[r][round]));
        }
      });
      for (std::uint32_t round = 0; round < 2; ++round) {
        INFO(c.label << ", P = " << P << ", round " << round);
        CHECK(std::memcmp(got[round].data(), want[round].data(), sizeof(float) * d) == 0);
        for (int r = 0; r < P; ++r) {
          CHECK(reps[r][round].selected == want_rep[round].selected);
          CHECK(reps[r][round].scores == want_rep[round].scores);
        }
      }
    }
  }
}

TEST_CASE("shard: the rules select the honest rows on the sharded example") {
  // Not only equal to the whole-vector rule: the selection is the right one.
  const int n = 11;
  const std::int64_t d = 2 * kSumChunk;
  std::vector<float> data(static_cast<std::size_t>(n * d));
  for (int i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      data[i * d + k] = i < 8 ? 1.0f + 0.01f * static_cast<float>((i * 7 + k) % 5) : -5.0f;
  std::vector<int> clients(n);
  for (int i = 0; i < n; ++i) clients[i] = i;
  AggregatorOptions o;
  o.name = "multikrum";
  o.f = 3;
  o.m = 8;
  ThreadGather gather(2);
  std::vector<Report> reps(2);
  std::vector<float> out(static_cast<std::size_t>(d));
  on_ranks(2, [&](int r) {
    const std::int64_t lo = r * kSumChunk, width = kSumChunk;
    std::vector<float> block(static_cast<std::size_t>(n * width));
    for (int i = 0; i < n; ++i)
      std::memcpy(block.data() + i * width, data.data() + i * d + lo, sizeof(float) * width);
    auto rule = make_aggregator(o);
    Context ctx;
    ctx.shard = Shard{lo, d, gather.for_thread(r)};
    REQUIRE(aggregate(*rule, Messages{block.data(), n, width, clients, {}}, ctx, out.data() + lo,
                      reps[r]));
  });
  const std::vector<int> honest{0, 1, 2, 3, 4, 5, 6, 7};
  CHECK(reps[0].selected == honest);
  CHECK(reps[1].selected == honest);
  for (std::int64_t k = 0; k < d; ++k) REQUIRE(out[k] > 0.9f);
}
