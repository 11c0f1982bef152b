#include "algo/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/rng.h"

namespace cohort::algo {

ClientBlock client_block(int num_clients, int rank, int ranks) {
  const auto n = static_cast<std::int64_t>(num_clients);
  return ClientBlock{static_cast<int>(n * rank / ranks), static_cast<int>(n * (rank + 1) / ranks)};
}

int clients_per_round(const Config& cfg, int num_clients) {
  const long long per_round = cfg.get_int("clients.per_round");
  if (per_round > 0) {
    require_usage(per_round <= num_clients,
                  fmt::format("clients.per_round = {} exceeds clients.num_clients = {}", per_round,
                              num_clients));
    return static_cast<int>(per_round);
  }
  const double f = cfg.get_float("clients.fraction");
  return std::max(1, static_cast<int>(std::lround(f * num_clients)));
}

std::vector<int> sample_clients(std::uint64_t seed, std::uint32_t round, int num_clients,
                                int per_round) {
  if (per_round >= num_clients) {
    std::vector<int> ids(static_cast<std::size_t>(num_clients));
    std::iota(ids.begin(), ids.end(), 0);
    return ids;
  }
  return Rng(seed, round, kGlobalClient, Purpose::kClientSampling).choose_sorted(num_clients, per_round);
}

}  // namespace cohort::algo
