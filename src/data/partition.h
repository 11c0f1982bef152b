// Partitioners: assign every training sample to exactly one client. All of them need
// 1 <= num_clients <= rows (UsageError otherwise), draw from the stream
// (seed, round 0, kGlobalClient, Purpose::kPartition) and return each client's indices sorted
// ascending (Note [Partition streams] in partition.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/registration.h"
#include "data/dataset.h"

namespace cohort::data {

// Uniformly random split into near-equal parts (sizes differ by at most one).
Partition partition_iid(std::int64_t rows, int num_clients, std::uint64_t seed);
// Per class, proportions over clients drawn from Dirichlet(alpha) (Hsu et al. 2019).
// alpha > 0. Per class: shuffle the class's samples, cut them at round(cumulative proportion *
// class size). Then every client receives at least one sample: an empty client takes one sample
// from the largest client.
Partition partition_dirichlet(const std::vector<std::int32_t>& labels, int num_classes,
                              int num_clients, double alpha, std::uint64_t seed);
// Sort by label, cut into num_clients * shards_per_client equal shards, give each client
// shards_per_client random shards (McMahan et al. 2017). Needs num_clients * shards_per_client
// <= rows; shard sizes differ by at most one. A shard spans at most two labels when every class
// holds at least a shard's worth of samples.
Partition partition_shards(const std::vector<std::int32_t>& labels, int num_clients,
                           int shards_per_client, std::uint64_t seed);

// Mean over clients of the total-variation distance between the client's label distribution
// and the global one: 0 for identical distributions, up to 1. Used to measure label skew.
double label_skew(const Partition& p, const std::vector<std::int32_t>& labels, int num_classes);

// A partition's schema entry and factory (Note [Registration]): the clients' rows of `train`
// for clients.num_clients and seed, from the data.partition.* keys it declares; `natural` is the
// data source's own partition (empty when it has none).
// The factory splits the rows among `clients` clients: clients.num_clients, or the honest ones
// alone under data.partition.byzantine_data = iid or none.
using PartitionRegistration = Registration<Partition(const Config& cfg, const Dataset& train,
                                                     Partition natural, int clients)>;

// The partitions (one explicit list); they are small, so they share this file.
const std::vector<PartitionRegistration>& partitions();
Section partition_section();
// The partition data.partition.name names. pool has no factory: its clients draw their rows when
// they train (DatasetProblem in algo/problem.cpp).
Partition make_partition(const Config& cfg, const Dataset& train, Partition natural,
                         int clients);
// data.partition.byzantine_data = iid or none (Note [Byzantine data]): spreads `honest` (a
// partition of the rows among the num_clients - |byzantine| honest clients) over the honest ids in
// ascending order, and gives each Byzantine client an iid share of the rows (iid) or none.
// byzantine is sorted ascending.
Partition place_byzantine(Partition honest, const std::vector<int>& byzantine, int num_clients,
                          const std::string& share, std::int64_t rows, std::uint64_t seed);

}  // namespace cohort::data
