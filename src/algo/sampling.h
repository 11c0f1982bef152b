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

// clients.per_round, or round(fraction * N) (at least 1). UsageError when above N.
int clients_per_round(const Config& cfg, int num_clients);

// The sorted ids of the clients sampled in `round`, drawn without replacement from the
// (seed, round, kClientSampling) stream: the same on every rank.
std::vector<int> sample_clients(std::uint64_t seed, std::uint32_t round, int num_clients,
                                int per_round);

}  // namespace cohort::algo
