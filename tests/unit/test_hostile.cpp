// Hostile inputs (Note [Input sizes], Note [One setup for run and validate]): every size a user
// gives is checked in its own type, memory a size implies is compared with the machine's before
// allocating, degenerate inputs give a usage error, and validate rejects what run rejects. Each
// case is a table or a walk over the schema, not one example; every check expects a UsageError
// with its words, so a crash, std::bad_alloc or a silently wrapped value fails here.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "algo/run_schema.h"
#include "algo/run_state.h"
#include "attack/attack.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/limits.h"
#include "core/schema.h"
#include "data/loaders.h"
#include "model/model.h"
#include "test_support.h"

using Catch::Matchers::Contains;
using cohort::Config;
using cohort::UsageError;
namespace fs = std::filesystem;

using cohort::test::TempDir;
using cohort::test::usage_error_of;

namespace {

struct IntKey {
  std::string path;          // dotted key
  std::vector<std::string> select;  // overrides that make the key valid (component names)
  cohort::Option option;
};

void collect(const cohort::Section& s, const std::string& prefix,
             const std::vector<std::string>& select, std::vector<IntKey>& out) {
  const std::string p = prefix.empty() ? "" : prefix + ".";
  for (const auto& o : s.options)
    if (o.type == cohort::OptType::kInt || o.type == cohort::OptType::kIntList)
      out.push_back({p + o.key, select, o});
  for (const auto& c : s.components) {
    auto sel = select;
    sel.push_back(p + "name=" + c.name);
    for (const auto& o : c.options)
      if (o.type == cohort::OptType::kInt || o.type == cohort::OptType::kIntList)
        out.push_back({p + o.key, sel, o});
  }
  for (const auto& child : s.children) collect(child, p + child.key, select, out);
}

std::string literal(const IntKey& k, const std::string& v) {
  return k.option.type == cohort::OptType::kIntList ? "[" + v + "]" : v;
}


void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string idx_header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  std::string h;
  dims.insert(dims.begin(), magic);
  for (const std::uint32_t v : dims)
    for (int shift = 24; shift >= 0; shift -= 8) h.push_back(static_cast<char>(v >> shift));
  return h;
}

}  // namespace

TEST_CASE("hostile: every integer key is bounded by its type before use", "[hostile][config]") {
  std::vector<IntKey> keys;
  collect(cohort::algo::run_schema(), "", {}, keys);
  REQUIRE(keys.size() > 20);
  for (const auto& k : keys) {
    const long long max = k.option.int_max;
    INFO("key " << k.path << " (holds at most " << max << ")");
    const std::vector<std::string> beyond = {
        max == std::numeric_limits<long long>::max() ? "9223372036854775808"
                                                     : std::to_string(max + 1),
        "4294967297", "18446744073709551617", "99999999999999999999999"};
    for (const auto& v : beyond) {
      if (v == "4294967297" && max > 4294967297LL) continue;
      auto overrides = k.select;
      overrides.push_back(k.path + "=" + literal(k, v));
      const std::string msg =
          usage_error_of([&] { Config::from_text("{}", overrides, cohort::algo::run_schema()); });
      CHECK_THAT(msg, Contains(k.path + " = '" + literal(k, v) + "' is not allowed"));
      CHECK_THAT(msg, Contains("holds at most " + std::to_string(max)));
    }
    // The type's largest value passes the type check (the key's own range may still refuse it).
    if (k.option.max >= static_cast<double>(max)) {
      auto overrides = k.select;
      overrides.push_back(k.path + "=" + literal(k, std::to_string(max)));
      const Config cfg = Config::from_text("{}", overrides, cohort::algo::run_schema());
      if (k.option.type == cohort::OptType::kInt) CHECK(cfg.get_int(k.path) == max);
    }
  }
}

TEST_CASE("hostile: checked size arithmetic and the memory check", "[hostile][limits]") {
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  const std::vector<std::pair<std::int64_t, std::int64_t>> overflow = {
      {big, 2}, {std::int64_t{1} << 32, std::int64_t{1} << 31}, {3037000500, 3037000500}, {-1, 1}};
  for (const auto& [a, b] : overflow) {
    INFO(a << " x " << b);
    CHECK_THAT(usage_error_of([&] { cohort::checked_mul(a, b, "thing"); }),
               Contains("thing: ") && Contains("overflows"));
  }
  CHECK(cohort::checked_mul(3037000499, 3037000499, "x") == 3037000499LL * 3037000499LL);
  CHECK(cohort::checked_mul(0, big, "x") == 0);
  CHECK_THAT(usage_error_of([&] { cohort::checked_add(big, 1, "sum"); }), Contains("sum: "));
  CHECK(cohort::checked_add(big - 1, 1, "sum") == big);

  CHECK(cohort::usable_memory_bytes() > (std::int64_t{1} << 20));
  for (const std::int64_t need : {std::int64_t{1} << 20, std::int64_t{1} << 40, big}) {
    const std::string msg = usage_error_of([&] { cohort::require_memory(need, "the buffer", 1000); });
    CHECK_THAT(msg, Contains("the buffer needs") && Contains(std::to_string(need) + " bytes") &&
                        Contains("1000 bytes"));
  }
  CHECK_NOTHROW(cohort::require_memory(1000, "the buffer", 1000));
}

TEST_CASE("hostile: LIBSVM indices and values beyond what a row can hold", "[hostile][data]") {
  TempDir dir("libsvm");
  const std::vector<std::string> lines = {
      "1 4611686018427387904:1", "1 1099511627776:1", "1 9223372036854775807:1",
      "1 9223372036854775808:1", "1 99999999999999999999999:1", "1 1:1 0:2"};
  for (const auto& line : lines) {
    INFO(line);
    const std::string path = dir.file("x.svm");
    write_file(path, "0 1:1\n" + line + "\n");
    const std::string msg = usage_error_of([&] { cohort::data::read_libsvm(path, 0, false); });
    CHECK_THAT(msg, Contains(path + ":2: index"));
  }
  const std::string path = dir.file("y.svm");
  write_file(path, "1e300 1:1\n");
  CHECK_THAT(usage_error_of([&] { cohort::data::read_libsvm(path, 0, true); }),
             Contains(path + ":1: value '1e300' is outside the float range"));
}

TEST_CASE("hostile: IDX headers promising more than the file or the machine", "[hostile][data]") {
  TempDir dir("idx");
  const std::uint32_t u32 = std::numeric_limits<std::uint32_t>::max();
  const std::vector<std::vector<std::uint32_t>> shapes = {
      {u32, 28, 28}, {1u << 20, 1u << 10, 1u << 10}, {u32, u32, u32}, {2, 65536, 65536}, {7, 1, 1}};
  for (const auto& dims : shapes) {
    INFO(dims[0] << " x " << dims[1] << " x " << dims[2]);
    const std::string path = dir.file("img");
    write_file(path, idx_header(0x803, dims) + std::string(5, '\x01'));
    const std::string msg = usage_error_of([&] { cohort::data::read_idx_images(path); });
    CHECK_THAT(msg, Contains(path));
    CHECK_THAT(msg, Contains("truncated") || Contains("memory") || Contains("implausible"));
  }
  for (const std::uint32_t n : {u32, 1u << 31, 9u}) {
    INFO(n << " labels");
    const std::string path = dir.file("lab");
    write_file(path, idx_header(0x801, {n}) + "\x01\x02");
    const std::string msg = usage_error_of([&] { cohort::data::read_idx_labels(path); });
    CHECK_THAT(msg, Contains(path) && (Contains("truncated") || Contains("memory")));
  }
}

TEST_CASE("hostile: model and generator sizes that overflow or exceed memory",
          "[hostile][model][data]") {
  const int imax = std::numeric_limits<int>::max();
  for (const auto& hidden : std::vector<std::vector<int>>{{imax, imax, imax}, {imax, imax, imax, 1}}) {
    CHECK_THAT(usage_error_of([&] {
                 cohort::model::make_mlp(imax, 10, hidden, cohort::model::Activation::kRelu);
               }),
               Contains("overflows"));
  }
  CHECK_THAT(usage_error_of([&] { cohort::data::synthetic_linear(imax, imax, imax, 0.1, 0.5, 1); }),
             Contains("synthetic_linear"));
  CHECK_THAT(usage_error_of([&] { cohort::data::synthetic_linear(1000, 1000, 1 << 30, 0.1, 0.2, 1); }),
             Contains("needs") && Contains("memory"));
  CHECK_THAT(usage_error_of([&] { cohort::data::synthetic_fedprox(1000, 1, 1, 1 << 30, 10, 50, 0.2, 1); }),
             Contains("synthetic_fedprox") && Contains("memory"));
}

TEST_CASE("hostile: an omniscient attack's message is defined exactly when craft_problem is empty",
          "[hostile][attack]") {
  for (const std::string name : {"alie", "ipm", "mimic", "minmax", "signflip"}) {
    cohort::attack::AttackOptions o;
    o.name = name;
    const auto atk = cohort::attack::make_attack(o);
    for (int n = 1; n <= 40; ++n)
      for (int f = 1; f <= n; ++f) {
        INFO(name << " n = " << n << " f = " << f);
        const bool defined = atk->craft_problem(n, f).empty();
        if (!atk->omniscient()) {
          CHECK(defined);
          continue;
        }
        const bool honest = n - f >= 1;
        CHECK(defined == (name == "alie" ? honest && n >= 3 && f <= n / 2 : honest));
        if (name == "alie") {
          if (defined)
            CHECK(std::isfinite(cohort::attack::alie_z_auto(n, f)));
          else
            CHECK_THROWS(cohort::attack::alie_z_auto(n, f));
        }
      }
  }
}

TEST_CASE("hostile: build (run, validate) rejects what the run would", "[hostile][setup]") {
  auto comm = cohort::comm::make_self_communicator();
  const std::string base = "data: {name: quadratic, dim: 2}\nrounds: 3\n";
  // attack.count above the population, and omniscient attacks whose rounds have no defined
  // message, for several populations.
  for (int n : {1, 2, 3, 5, 10}) {
    INFO("num_clients " << n);
    const std::string clients = "clients.num_clients=" + std::to_string(n);
    CHECK_THAT(usage_error_of([&] {
                 cohort::algo::build(
                     Config::from_text(base,
                                       {clients, "attack.name=zero",
                                        "attack.count=" + std::to_string(n + 1)},
                                       cohort::algo::run_schema()),
                     *comm);
               }),
               Contains("attack.count = " + std::to_string(n + 1) + " exceeds"));
    CHECK_THAT(usage_error_of([&] {
                 cohort::algo::build(
                     Config::from_text(base,
                                       {clients, "attack.name=ipm",
                                        "attack.count=" + std::to_string(n)},
                                       cohort::algo::run_schema()),
                     *comm);
               }),
               Contains("round 1 samples") && Contains("none is sampled"));
    for (int f = 1; f < n; ++f) {
      INFO("alie z: auto, f = " << f);
      const auto cfg = Config::from_text(
          base, {clients, "attack.name=alie", "attack.count=" + std::to_string(f)},
          cohort::algo::run_schema());
      if (n >= 3 && f <= n / 2) {
        CHECK_NOTHROW(cohort::algo::build(cfg, *comm));
      } else {
        CHECK_THAT(usage_error_of([&] { cohort::algo::build(cfg, *comm); }),
                   Contains("alie z: auto is undefined"));
      }
    }
  }
  // Sampling a subset: the replay finds the first round whose sample has no honest client.
  const auto sparse = Config::from_text(
      base, {"clients.num_clients=4", "clients.per_round=1", "attack.name=mimic", "attack.count=2",
             "rounds=50"},
      cohort::algo::run_schema());
  CHECK_THAT(usage_error_of([&] { cohort::algo::build(sparse, *comm); }),
             Contains("samples 1 clients of which 1 are Byzantine"));
  // A run too large for the machine is refused before any d-sized buffer exists.
  CHECK_THAT(usage_error_of([&] {
               cohort::algo::build(
                   Config::from_text("data: {name: synthetic_fedprox, dim: 10}\nmodel: {name: mlp, "
                                     "hidden: [2000000000, 2000000000]}\n",
                                     {}, cohort::algo::run_schema()),
                   *comm);
             }),
             Contains("the run (") && Contains("memory"));
}
