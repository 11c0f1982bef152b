// Checkpoint files (Note [Checkpoints]): state round trips, and hostile bytes only ever fail a
// check (an exception saying what is wrong), never crash.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/client_store.h"
#include "core/config.h"
#include "core/state.h"
#include "metrics/checkpoint.h"
#include "test_support.h"

using namespace cohort;

namespace {

StateBundle sample_state() {
  StateBundle b;
  b.f32["run/x"] = {1.5f, -2.0f, 0.0f};
  b.f64["results/rounds/train_loss"] = {0.5, 0.25};
  b.i64["exchange/scales"] = {-3, 7};
  b.put_client("error", 5, std::vector<float>{1, 2});
  b.put_client("error", 2, std::vector<float>{3, 4});
  return b;
}

}  // namespace

TEST_CASE("checkpoint: state bundles round-trip, client rows merge in id order", "[checkpoint]") {
  StateBundle a = sample_state();
  StateBundle b;
  b.put_client("error", 3, std::vector<float>{9, 9});
  StateBundle merged;
  merged.merge(StateBundle::deserialize(a.serialize()));
  merged.merge(StateBundle::deserialize(b.serialize()));
  const auto& slot = merged.clients.at("error");
  REQUIRE(slot.ids == std::vector<std::int64_t>{2, 3, 5});
  REQUIRE(slot.values == std::vector<float>{3, 4, 9, 9, 1, 2});
  REQUIRE(merged.get_f32("run/x") == a.f32["run/x"]);
  REQUIRE(merged.get_i64("exchange/scales") == std::vector<std::int64_t>{-3, 7});
  REQUIRE_THROWS_WITH(merged.get_f32("server/m"), Catch::Contains("server/m"));
  // Every truncation of the bytes is refused.
  const auto bytes = a.serialize();
  for (std::size_t n = 0; n < bytes.size(); ++n)
    REQUIRE_THROWS(StateBundle::deserialize(std::span<const std::uint8_t>(bytes.data(), n)));
}

TEST_CASE("client store: rows appear zeroed at first use, on the owning rank only, and move "
          "between rank counts through a checkpoint", "[checkpoint][store]") {
  // Rank 1 of 2 over 10 clients owns [5, 10).
  ClientStore a(5, 10);
  const auto e = a.declare("error", "error feedback", 3);
  const auto m = a.declare("momentum", "worker momentum", 2);
  REQUIRE(a.declare("control", "control variate", 0) == ClientStore::kNone);  // no state: no slot
  REQUIRE_THROWS_AS(a.declare("error", "again", 1), std::logic_error);
  REQUIRE(a.slots().size() == 2);
  REQUIRE(a.find(e, 7).empty());
  auto r = a.row(e, 7);
  REQUIRE(std::vector<float>(r.begin(), r.end()) == std::vector<float>{0, 0, 0});
  r[1] = 2.5f;
  REQUIRE(a.row(e, 7)[1] == 2.5f);  // the same row, not a new one
  a.row(e, 9)[0] = -1.0f;
  a.row(m, 5)[1] = 4.0f;
  REQUIRE(a.clients(e) == 2);
  REQUIRE(a.clients(m) == 1);
  REQUIRE_THROWS_AS(a.row(e, 4), std::logic_error);   // client 4 is rank 0's
  REQUIRE_THROWS_AS(a.row(e, 10), std::logic_error);

  StateBundle b;
  a.save(b);
  REQUIRE(b.clients.at("error").ids == std::vector<std::int64_t>{7, 9});
  REQUIRE(b.clients.at("error").values == std::vector<float>{0, 2.5f, 0, -1, 0, 0});
  REQUIRE(b.clients.at("momentum").ids == std::vector<std::int64_t>{5});

  // Read back at three ranks: [3, 6) keeps client 5's momentum only, [6, 10) the error rows.
  ClientStore c(3, 6), d(6, 10);
  for (ClientStore* st : {&c, &d}) {
    st->declare("error", "error feedback", 3);
    st->declare("momentum", "worker momentum", 2);
    st->load(b);
  }
  REQUIRE(c.clients(0) == 0);
  REQUIRE(c.find(1, 5)[1] == 4.0f);
  REQUIRE(d.clients(0) == 2);
  REQUIRE(d.find(0, 7)[1] == 2.5f);
  REQUIRE(d.find(0, 9)[0] == -1.0f);
  REQUIRE(d.clients(1) == 0);

  // A checkpoint whose rows have another width is refused, naming the slot.
  ClientStore wide(0, 10);
  wide.declare("error", "error feedback", 4);
  REQUIRE_THROWS_WITH(wide.load(b), Catch::Contains("checkpoint slot error holds rows of 3 values; "
                                                    "this run keeps 4"));
}

TEST_CASE("checkpoint: files round-trip; damaged and hostile files fail a check", "[checkpoint]") {
  const cohort::test::TempDir tmp("checkpoint");
  const std::string dir = tmp.file("ckpt");
  metrics::CheckpointOptions o;
  o.dir = dir;
  o.keep = 2;
  const std::string config = "seed: 1\nrounds: 3\n";
  for (long long r : {1, 2, 3}) metrics::write_checkpoint(o, sample_state(), r, config);
  // keep = 2: the newest two remain.
  REQUIRE_FALSE(std::filesystem::exists(dir + "/round-00000001.ckpt"));
  const std::string path = dir + "/round-00000003.ckpt";
  std::string cfg_text, version;
  const auto loaded = metrics::read_checkpoint_file(path, &cfg_text, &version);
  REQUIRE(loaded.round == 3);
  REQUIRE(cfg_text == config);
  REQUIRE(loaded.state.clients.at("error").ids == std::vector<std::int64_t>{5, 2});
  std::ifstream in(path, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Every truncation, and 2000 random corruptions (byte flips, inserted lengths), either read
  // back exactly or throw; none crashes.
  const std::string bad = dir + "/bad.ckpt";
  const auto try_read = [&](const std::string& bytes) {
    std::ofstream(bad, std::ios::binary | std::ios::trunc) << bytes;
    std::string c, v;
    try {
      metrics::read_checkpoint_file(bad, &c, &v);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  for (std::size_t n = 0; n < good.size(); n += 1 + n / 64) REQUIRE_FALSE(try_read(good.substr(0, n)));
  std::mt19937_64 g(3);
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(g() % 4);
    for (int k = 0; k < flips; ++k) b[g() % b.size()] ^= static_cast<char>(1 + g() % 255);
    accepted += try_read(b) ? 1 : 0;
  }
  REQUIRE(accepted == 0);  // the CRC catches every corruption here
}

TEST_CASE("checkpoint: config differences name the keys, ignoring rounds, output and checkpoint",
          "[checkpoint]") {
  const auto diff = metrics::config_differences(
      "seed: 1\nrounds: 5\noutput: {path: a.h5}\nmodel: {hidden: [8, 4]}\ncheckpoint: {every: 2}\n",
      "seed: 2\nrounds: 9\noutput: {path: b.h5}\nmodel: {hidden: [8]}\ncheckpoint: {every: 3}\n");
  REQUIRE(diff.size() == 2);
  REQUIRE(diff[0] == "model.hidden ([8, 4] here, [8] in the checkpoint)");
  REQUIRE(diff[1] == "seed (1 here, 2 in the checkpoint)");
}
