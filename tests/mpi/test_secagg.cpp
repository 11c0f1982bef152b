// Secure aggregation across ranks (Note [Secure aggregation] in privacy/secagg.h): the clients of
// a round spread over the ranks in blocks, dropouts on every rank, against the same round run
// on one process.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "algo/sampling.h"
#include "comm/communicator.h"
#include "core/rng.h"
#include "privacy/secagg.h"

using namespace cohort;

namespace {

std::vector<float> update_of(int c, std::uint32_t r, std::int64_t d) {
  Rng rng(17, r, static_cast<std::uint32_t>(c), Purpose::kTest);
  std::vector<float> u(static_cast<std::size_t>(d));
  for (auto& v : u) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  return u;
}

}  // namespace

TEST_CASE("secagg: sum, survivors and transcript are those of one process", "[mpi]") {
  auto comm = comm::make_mpi_communicator();
  auto self = comm::make_self_communicator();
  const int population = 40;
  const std::int64_t d = 97;
  const std::vector<int> sampled = {0, 1, 6, 9, 10, 15, 19, 20, 22, 27, 31, 33, 38, 39};
  privacy::SecaggOptions o;
  o.enabled = true;
  o.threshold = 6;
  o.dropout = 0.3;
  o.late_dropout = 0.2;  // leaves after delivery: in the sum, no shares
  o.clip = o.range = 1.0;
  o.max_clients = static_cast<int>(sampled.size());
  o.fraction_bits = privacy::auto_fraction_bits(o.range, o.max_clients);
  const algo::ClientBlock mine = algo::client_block(population, comm->rank(), comm->size());
  privacy::SecureAggregation spread(o, *comm, 8, d), whole(o, *self, 8, d);
  int unmasked = 0;
  for (std::uint32_t r = 0; r < 6; ++r) {
    INFO("round " << r);
    spread.begin_round(r, sampled, mine.begin, mine.end);
    whole.begin_round(r, sampled, 0, population);
    std::vector<std::int64_t> plain(static_cast<std::size_t>(d), 0);
    const double scale = std::ldexp(1.0, o.fraction_bits);
    for (int c : sampled) {
      const auto u = update_of(c, r, d);
      whole.submit(c, u);
      if (mine.owns(c)) spread.submit(c, u);
      if (whole.dropped(c)) continue;
      for (std::int64_t j = 0; j < d; ++j)
        plain[static_cast<std::size_t>(j)] +=
            std::llround(static_cast<double>(u[static_cast<std::size_t>(j)]) * scale);
    }
    const bool a = spread.finish(), b = whole.finish();
    REQUIRE(a == b);
    REQUIRE(spread.report().survivors == whole.report().survivors);
    REQUIRE(spread.report().responders == whole.report().responders);
    REQUIRE(spread.report().transcript == whole.report().transcript);
    REQUIRE(spread.report().client_sent == whole.report().client_sent);
    if (!a) continue;
    ++unmasked;
    for (std::int64_t j = 0; j < d; ++j) {
      REQUIRE(spread.sum()[static_cast<std::size_t>(j)] ==
              whole.sum()[static_cast<std::size_t>(j)]);
      REQUIRE(spread.sum()[static_cast<std::size_t>(j)] == plain[static_cast<std::size_t>(j)]);
    }
  }
  REQUIRE(unmasked >= 3);
}
