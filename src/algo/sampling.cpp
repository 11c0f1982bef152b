#include "algo/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/rng.h"

namespace cohort::algo {

ClientBlock client_block(int num_clients, int rank, int ranks) {
  const auto n = static_cast<std::int64_t>(num_clients);
  return ClientBlock{static_cast<int>(n * rank / ranks), static_cast<int>(n * (rank + 1) / ranks)};
}

int poisson_bound(int num_clients, double q) {
  const double n = num_clients;
  const double bound = std::ceil(n * q + 12 * std::sqrt(n * q * (1 - q)) + 12);
  return static_cast<int>(std::min(n, bound));
}

std::vector<int> sample_poisson(std::uint64_t seed, std::uint32_t round, int num_clients,
                                double q) {
  std::vector<int> ids;
  if (q >= 1) {
    ids.resize(static_cast<std::size_t>(num_clients));
    std::iota(ids.begin(), ids.end(), 0);
    return ids;
  }
  Rng rng(seed, round, kGlobalClient, Purpose::kClientSampling);
  const double log1q = std::log1p(-q);
  long long pos = -1;
  for (;;) {  // the gap to the next sampled client is geometric: floor(log U / log(1 - q))
    const double skip = std::floor(std::log(rng.uniform_open0()) / log1q);
    if (skip >= static_cast<double>(num_clients)) break;
    pos += static_cast<long long>(skip) + 1;
    if (pos >= num_clients) break;
    ids.push_back(static_cast<int>(pos));
  }
  return ids;
}

Sampling Sampling::from_config(const Config& cfg, int num_clients) {
  Sampling s;
  s.poisson = cfg.get_string("clients.sampling") == "poisson";
  s.q = cfg.get_float("clients.fraction");
  s.per_round = clients_per_round(cfg, num_clients);
  return s;
}

std::vector<int> Sampling::sample(std::uint64_t seed, std::uint32_t round, int num_clients) const {
  if (!poisson) return sample_clients(seed, round, num_clients, per_round);
  std::vector<int> ids = sample_poisson(seed, round, num_clients, q);
  if (static_cast<int>(ids.size()) > per_round)
    throw std::runtime_error(fmt::format("round {} sampled {} clients, above the Poisson bound {} "
                                         "(Note [Poisson sampling])",
                                         round + 1, ids.size(), per_round));
  return ids;
}

int clients_per_round(const Config& cfg, int num_clients) {
  if (cfg.get_string("clients.sampling") == "poisson") {
    require_usage(cfg.get_int("clients.per_round") == 0,
                  "clients.sampling = poisson samples each client with probability "
                  "clients.fraction: leave clients.per_round at 0");
    return poisson_bound(num_clients, cfg.get_float("clients.fraction"));
  }
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
