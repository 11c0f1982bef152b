// Client sampling and the client -> rank mapping.
#pragma once

#include <cstdint>
#include <vector>

#include "core/config.h"

namespace cohort::algo {

// Rank r owns the contiguous block [begin, end) of client ids: begin = floor(N r / P).
struct ClientBlock {
  int begin = 0, end = 0;
  bool owns(int c) const { return c >= begin && c < end; }
};
ClientBlock client_block(int num_clients, int rank, int ranks);

// clients.per_round, or round(fraction * N) (at least 1). UsageError when above N. With
// clients.sampling = poisson: the most clients a round may sample (poisson_bound).
int clients_per_round(const Config& cfg, int num_clients);

// Note [Poisson sampling]
// clients.sampling = poisson samples every client independently with probability
// q = clients.fraction (what the privacy accountant's sampled Gaussian mechanism assumes), so a
// round's number of clients varies and may be 0. The sample is drawn by geometric skips from the
// (seed, round, kClientSampling) stream, O(sampled) work, the same on every rank. Buffers, the
// exact sums' precision and the per-client result rows are sized for
// poisson_bound(N, q) = min(N, ceil(N q + 12 sqrt(N q (1 - q)) + 12)) clients, twelve standard
// deviations above the mean; a round above it (probability below 1e-30) is an error. The
// results' per-client rows (/clients/sampled, /clients/uplink_bits) are padded to that width
// with -1 and 0, and /rounds/clients holds each round's count.
int poisson_bound(int num_clients, double q);
std::vector<int> sample_poisson(std::uint64_t seed, std::uint32_t round, int num_clients, double q);

// The round's sample under the config's clients.sampling.
struct Sampling {
  bool poisson = false;
  double q = 1;
  int per_round = 0;  // uniform: the count; poisson: the bound
  static Sampling from_config(const Config& cfg, int num_clients);
  std::vector<int> sample(std::uint64_t seed, std::uint32_t round, int num_clients) const;
};

// The sorted ids of the clients sampled in `round`, drawn without replacement from the
// (seed, round, kClientSampling) stream: the same on every rank.
std::vector<int> sample_clients(std::uint64_t seed, std::uint32_t round, int num_clients,
                                int per_round);

}  // namespace cohort::algo
