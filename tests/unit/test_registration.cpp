// Note [Registration]: each category's list gives its slot in the schema, its reader and, for
// the compressors, the options' defaults (Note [Compressor options]). These tests read configs
// through the readers the exchange, the commands and the setup call, against the values the
// schema declares.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "algo/problem.h"
#include "algo/run_schema.h"
#include "algo/server_optimizer.h"
#include "attack/attack.h"
#include "compress/compressor.h"
#include "core/config.h"
#include "data/partition.h"
#include "robust/aggregator.h"

using namespace cohort;

namespace {

Config parse(const std::vector<std::string>& overrides) {
  return Config::from_text("", overrides, algo::run_schema(), "test.yaml");
}

const Section& child(const Section& s, const std::string& key) {
  for (const auto& c : s.children)
    if (c.key == key) return c;
  FAIL("no section " << key);
  return s;
}

template <class R>
std::vector<std::string> names(const std::vector<R>& list) {
  std::vector<std::string> out;
  for (const auto& r : list) out.push_back(r.name);
  return out;
}

std::vector<std::string> names(const Section& slot) {
  std::vector<std::string> out;
  for (const auto& c : slot.components) out.push_back(c.name);
  return out;
}

bool same(const compress::CompressorOptions& a, const compress::CompressorOptions& b) {
  return a.scale == b.scale && a.ratio == b.ratio && a.k == b.k &&
         a.plain_indices == b.plain_indices && a.unbiased == b.unbiased && a.levels == b.levels &&
         a.norm == b.norm && a.bucket == b.bucket && a.coding == b.coding && a.rank == b.rank &&
         a.warm_start == b.warm_start && a.mode == b.mode;
}

}  // namespace

TEST_CASE("registration: every slot of the run schema lists its category's components",
          "[registration]") {
  const Section& root = algo::run_schema();
  CHECK(names(child(root, "data")) == names(algo::data_sources()));
  CHECK(names(child(child(root, "data"), "partition")) == names(data::partitions()));
  CHECK(names(child(root, "model")) == names(algo::models()));
  CHECK(names(child(root, "algorithm")) == names(algo::algorithms()));
  CHECK(names(child(root, "server_optimizer")) == names(algo::server_optimizers()));
  CHECK(names(child(root, "aggregator")) == names(robust::aggregators()));
  CHECK(names(child(root, "compressor")) == names(compress::compressors()));
  CHECK(names(child(root, "downlink_compressor")) == names(compress::compressors()));
  CHECK(names(child(root, "attack")) == names(attack::attacks()));
}

TEST_CASE("registration: compressor options default to what the schema declares",
          "[registration][compress]") {
  // A config that names a compressor and sets nothing else reads back the struct's defaults.
  for (const auto& r : compress::compressors()) {
    INFO("compressor " << r.name);
    const auto read =
        compress::compressor_options(parse({"compressor.name=" + r.name}), compress::kUplinkSlot);
    CHECK(read.name == r.name);
    CHECK(read.section == "compressor");
    CHECK(same(read, compress::CompressorOptions()));
  }
  const compress::CompressorOptions d;
  CHECK(d.name == "none");
  CHECK(d.ratio == 0.01);
  CHECK(d.levels == 4);
  CHECK(d.norm == "l2");
  CHECK(d.rank == 2);
  CHECK(d.warm_start);
  CHECK(d.mode == "reduce");
  CHECK(!d.plain_indices);
}

TEST_CASE("registration: each compressor slot reads its own keys", "[registration][compress]") {
  const Config cfg = parse({"compressor.name=topk", "compressor.k=7", "compressor.index_bits=plain",
                            "downlink_compressor.name=powersgd", "downlink_compressor.rank=3",
                            "downlink_compressor.warm_start=false"});
  const auto up = compress::compressor_options(cfg, compress::kUplinkSlot);
  CHECK(up.name == "topk");
  CHECK(up.k == 7);
  CHECK(up.plain_indices);
  const auto down = compress::compressor_options(cfg, compress::kDownlinkSlot);
  CHECK(down.name == "powersgd");
  CHECK(down.section == "downlink_compressor");
  CHECK(down.rank == 3);
  CHECK(!down.warm_start);
  // mode is the uplink slot's only: the broadcast has no mode key, its options keep the default.
  const Section& root = algo::run_schema();
  const auto has_mode = [](const Section& s) {
    for (const auto& o : s.find_component("powersgd")->options)
      if (o.key == "mode") return true;
    return false;
  };
  CHECK(has_mode(child(root, "compressor")));
  CHECK(!has_mode(child(root, "downlink_compressor")));
  CHECK(down.mode == "reduce");
  CHECK(compress::make_compressor(down)->name() == "powersgd");
}

TEST_CASE("registration: the aggregator, attack and server optimizer readers", "[registration]") {
  const Config cfg = parse({"aggregator.name=multikrum", "aggregator.f=2", "aggregator.m=3",
                            "aggregator.bucketing=2", "attack.name=gaussian", "attack.sigma=0.5",
                            "attack.count=3", "server_optimizer.name=momentum",
                            "server_optimizer.form=heavy_ball", "server_optimizer.beta=0.5"});
  const auto a = robust::aggregator_options(cfg);
  CHECK(a.name == "multikrum");
  CHECK(a.f == 2);
  CHECK(a.m == 3);
  CHECK(a.bucket == 2);
  CHECK(robust::make_aggregator(a)->name() == "multikrum+bucketing");
  const auto z = robust::aggregator_options(
      parse({"aggregator.name=zeno", "aggregator.b=2", "aggregator.batch=8"}));
  CHECK(z.b == 2);
  CHECK(z.batch == 8);
  CHECK(z.rho == 5e-4);
  CHECK(z.bucket == 0);

  const auto t = attack::attack_options(cfg);
  CHECK(t.name == "gaussian");
  CHECK(t.sigma == 0.5);
  CHECK(t.count == 3);
  CHECK(t.fraction == 0.0);
  CHECK(attack::make_attack(t)->name() == "gaussian");

  const auto s = algo::ServerOptimizerOptions::from_config(cfg);
  CHECK(s.name == "momentum");
  CHECK(s.heavy_ball);
  CHECK(s.beta == 0.5);
  CHECK(s.lr == 1.0);
  const auto adam =
      algo::ServerOptimizerOptions::from_config(parse({"server_optimizer.name=adam"}));
  CHECK(adam.lr == 0.01);  // adam declares its own default
  CHECK(algo::make_server_optimizer(adam)->name() == "adam");
}
