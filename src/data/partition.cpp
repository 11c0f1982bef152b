// Partitioners and the label-skew measure.
//
// Note [Partition streams]
// Each partitioner draws from one global stream Rng(seed, 0, kGlobalClient, Purpose::kPartition),
// consumed in a fixed order (class by class, client by client), so a partition is a pure function
// of its arguments. Cuts use round-half-up on exact cumulative counts, and each client's index
// list is sorted ascending at the end.
#include "data/partition.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/rng.h"

namespace cohort::data {
namespace {

Rng partition_stream(std::uint64_t seed) {
  return Rng(seed, 0, kGlobalClient, Purpose::kPartition);
}

// 0..rows-1 in the order of one shuffle drawn from rng.
std::vector<std::int64_t> shuffled_rows(std::int64_t rows, Rng& rng) {
  std::vector<std::int64_t> perm(static_cast<std::size_t>(rows));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  rng.shuffle(std::span<std::int64_t>(perm));
  return perm;
}

void check_clients(std::int64_t rows, int num_clients, const char* who) {
  require_usage(num_clients >= 1, std::string(who) + ": num_clients is " +
                                      std::to_string(num_clients) + "; it must be at least 1");
  require_usage(static_cast<std::int64_t>(num_clients) <= rows,
                std::string(who) + ": num_clients (" + std::to_string(num_clients) +
                    ") exceeds the number of training samples (" + std::to_string(rows) +
                    "); every client needs at least one sample");
}

void check_labels(const std::vector<std::int32_t>& labels, int num_classes, const char* who) {
  require_usage(num_classes >= 1, std::string(who) + ": num_classes is " +
                                      std::to_string(num_classes) +
                                      "; label-based partitioning needs a classification "
                                      "dataset (num_classes >= 1)");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      throw UsageError(std::string(who) + ": label " + std::to_string(labels[i]) + " of sample " +
                       std::to_string(i) + " is outside 0.." + std::to_string(num_classes - 1));
    }
  }
}

void sort_all(Partition& p) {
  for (auto& idx : p) std::sort(idx.begin(), idx.end());
}

// Dirichlet(alpha) proportions over n clients from Gamma(alpha) draws. For alpha < 1 the draw is
// formed in log space, Gamma(a) = Gamma(a + 1) * U^(1/a), so tiny alphas cannot underflow every
// component to zero.
std::vector<double> dirichlet(Rng& rng, int n, double alpha) {
  std::vector<double> log_g(static_cast<std::size_t>(n));
  for (double& lg : log_g) {
    if (alpha >= 1.0) {
      lg = std::log(rng.gamma(alpha));
    } else {
      const double g = rng.gamma(alpha + 1.0);
      lg = std::log(g) + std::log(rng.uniform_open0()) / alpha;
    }
  }
  const double top = *std::max_element(log_g.begin(), log_g.end());
  std::vector<double> p(log_g.size());
  double sum = 0.0;
  for (std::size_t k = 0; k < p.size(); ++k) {
    p[k] = std::exp(log_g[k] - top);
    sum += p[k];
  }
  for (double& v : p) v /= sum;
  return p;
}

}  // namespace

Partition partition_iid(std::int64_t rows, int num_clients, std::uint64_t seed) {
  require_usage(rows >= 0, "partition iid: rows must be >= 0");
  check_clients(rows, num_clients, "partition iid");
  Rng rng = partition_stream(seed);
  const std::vector<std::int64_t> perm = shuffled_rows(rows, rng);
  Partition p(static_cast<std::size_t>(num_clients));
  const std::int64_t base = rows / num_clients, extra = rows % num_clients;
  std::int64_t start = 0;
  for (int k = 0; k < num_clients; ++k) {
    const std::int64_t size = base + (k < extra ? 1 : 0);
    p[static_cast<std::size_t>(k)].assign(perm.begin() + start, perm.begin() + start + size);
    start += size;
  }
  sort_all(p);
  return p;
}

Partition partition_dirichlet(const std::vector<std::int32_t>& labels, int num_classes,
                              int num_clients, double alpha, std::uint64_t seed) {
  const char* who = "partition dirichlet";
  require_usage(std::isfinite(alpha) && alpha > 0.0,
                std::string(who) + ": alpha is " + std::to_string(alpha) +
                    "; it must be a finite number > 0 (small = skewed, large = near iid)");
  const auto rows = static_cast<std::int64_t>(labels.size());
  check_clients(rows, num_clients, who);
  check_labels(labels, num_classes, who);

  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::int64_t i = 0; i < rows; ++i) {
    by_class[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])].push_back(i);
  }

  Rng rng = partition_stream(seed);
  Partition p(static_cast<std::size_t>(num_clients));
  for (auto& members : by_class) {
    rng.shuffle(std::span<std::int64_t>(members));
    const std::vector<double> prop = dirichlet(rng, num_clients, alpha);
    const auto n = static_cast<double>(members.size());
    double cum = 0.0;
    std::size_t begin = 0;
    for (int k = 0; k < num_clients; ++k) {
      cum += prop[static_cast<std::size_t>(k)];
      std::size_t end = k + 1 == num_clients ? members.size()
                                             : static_cast<std::size_t>(std::floor(cum * n + 0.5));
      end = std::clamp(end, begin, members.size());
      auto& dst = p[static_cast<std::size_t>(k)];
      dst.insert(dst.end(), members.begin() + static_cast<std::ptrdiff_t>(begin),
                 members.begin() + static_cast<std::ptrdiff_t>(end));
      begin = end;
    }
  }

  // Every client gets at least one sample: an empty client takes the last-assigned sample of the
  // currently largest client (lowest id on ties). rows >= num_clients guarantees that client
  // holds at least two samples while any client is empty.
  for (auto& dst : p) {
    if (!dst.empty()) continue;
    auto donor = std::max_element(p.begin(), p.end(),
                                  [](const auto& a, const auto& b) { return a.size() < b.size(); });
    dst.push_back(donor->back());
    donor->pop_back();
  }
  sort_all(p);
  return p;
}

Partition partition_shards(const std::vector<std::int32_t>& labels, int num_clients,
                           int shards_per_client, std::uint64_t seed) {
  const char* who = "partition shards";
  const auto rows = static_cast<std::int64_t>(labels.size());
  check_clients(rows, num_clients, who);
  require_usage(shards_per_client >= 1, std::string(who) + ": shards_per_client is " +
                                            std::to_string(shards_per_client) +
                                            "; it must be at least 1");
  const std::int64_t num_shards = std::int64_t{num_clients} * shards_per_client;
  require_usage(num_shards <= rows,
                std::string(who) + ": num_clients * shards_per_client = " +
                    std::to_string(num_shards) + " shards but only " + std::to_string(rows) +
                    " samples; every shard needs at least one sample (lower shards_per_client)");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    require_usage(labels[i] >= 0, std::string(who) + ": label " + std::to_string(labels[i]) +
                                      " of sample " + std::to_string(i) + " is negative");
  }

  std::vector<std::int64_t> order(static_cast<std::size_t>(rows));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return labels[static_cast<std::size_t>(a)] < labels[static_cast<std::size_t>(b)];
  });
  // Shard s covers sorted positions [s*rows/num_shards, (s+1)*rows/num_shards): sizes differ by at
  // most one.
  std::vector<std::int64_t> shard_ids(static_cast<std::size_t>(num_shards));
  std::iota(shard_ids.begin(), shard_ids.end(), std::int64_t{0});
  Rng rng = partition_stream(seed);
  rng.shuffle(std::span<std::int64_t>(shard_ids));

  Partition p(static_cast<std::size_t>(num_clients));
  for (std::int64_t j = 0; j < num_shards; ++j) {
    const std::int64_t s = shard_ids[static_cast<std::size_t>(j)];
    // s * rows can exceed int64 for large files: the cut is computed in 128 bits.
    const auto cut = [&](std::int64_t k) {
      return static_cast<std::int64_t>(static_cast<__int128>(k) * rows / num_shards);
    };
    const std::int64_t begin = cut(s), end = cut(s + 1);
    auto& dst = p[static_cast<std::size_t>(j / shards_per_client)];
    dst.insert(dst.end(), order.begin() + begin, order.begin() + end);
  }
  sort_all(p);
  return p;
}

double label_skew(const Partition& p, const std::vector<std::int32_t>& labels, int num_classes) {
  check_labels(labels, num_classes, "label_skew");
  if (labels.empty()) return 0.0;
  std::vector<double> global(static_cast<std::size_t>(num_classes), 0.0);
  for (const std::int32_t y : labels) global[static_cast<std::size_t>(y)] += 1.0;
  for (double& g : global) g /= static_cast<double>(labels.size());

  double total = 0.0;
  int counted = 0;
  std::vector<double> local(global.size());
  for (const auto& idx : p) {
    if (idx.empty()) continue;
    std::fill(local.begin(), local.end(), 0.0);
    for (const std::int64_t i : idx) {
      require_usage(i >= 0 && i < static_cast<std::int64_t>(labels.size()),
                    "label_skew: sample index " + std::to_string(i) + " is outside 0.." +
                        std::to_string(labels.size()) + "-1");
      local[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])] += 1.0;
    }
    double tv = 0.0;
    for (std::size_t c = 0; c < local.size(); ++c) {
      tv += std::fabs(local[c] / static_cast<double>(idx.size()) - global[c]);
    }
    total += 0.5 * tv;
    ++counted;
  }
  return counted == 0 ? 0.0 : total / counted;
}

namespace {

// A partition of the rows themselves gives each client at least one of them.
void require_rows(const Config& cfg, const Dataset& train, int clients) {
  const auto n = cfg.get_int("clients.num_clients");
  require_usage(clients <= train.rows,
                n == clients
                    ? fmt::format("clients.num_clients = {} exceeds the {} training rows "
                                  "(clients may share rows with data.partition.name = pool)",
                                  n, train.rows)
                    : fmt::format("the {} honest clients of clients.num_clients = {} exceed the "
                                  "{} training rows",
                                  clients, n, train.rows));
}

void require_labels(const std::string& name, const Dataset& train) {
  require_usage(!train.is_regression(),
                "data.partition.name = " + name + " needs class labels; regression data allows "
                "iid or natural");
}

std::uint64_t seed(const Config& cfg) { return static_cast<std::uint64_t>(cfg.get_int("seed")); }

// The generator's own blocks cover every client: they cannot be split among the honest ones.
void require_all_clients(const Config& cfg, int clients) {
  require_usage(clients == static_cast<int>(cfg.get_int("clients.num_clients")),
                "data.partition.byzantine_data = " +
                    cfg.get_string("data.partition.byzantine_data") +
                    " needs a partition of the rows: the generator's own blocks (partition "
                    "natural, or auto on synthetic data) give every client its block; set "
                    "data.partition.name to iid, dirichlet or shards, or byzantine_data to same");
}

Partition iid(const Config& cfg, const Dataset& train, int clients) {
  require_rows(cfg, train, clients);
  return partition_iid(train.rows, clients, seed(cfg));
}

}  // namespace

const std::vector<PartitionRegistration>& partitions() {
  static const std::vector<PartitionRegistration> list = {
      {"auto",
       "natural for synthetic, inline and quadratic data, iid otherwise",
       {},
       [](const Config& cfg, const Dataset& train, Partition natural, int clients) {
         if (natural.empty()) return iid(cfg, train, clients);
         require_all_clients(cfg, clients);
         return natural;
       }},
      {"iid",
       "uniformly random, near-equal sizes",
       {},
       [](const Config& cfg, const Dataset& train, Partition, int clients) {
         return iid(cfg, train, clients);
       }},
      {"dirichlet",
       "per-class proportions over clients drawn from Dirichlet(alpha) (classification only)",
       {opt_float("alpha", 0.5, "concentration; smaller means more label skew", 0, INFINITY, true)},
       [](const Config& cfg, const Dataset& train, Partition, int clients) {
         require_rows(cfg, train, clients);
         require_labels("dirichlet", train);
         return partition_dirichlet(train.labels, train.num_classes, clients,
                                    cfg.get_float("data.partition.alpha"), seed(cfg));
       }},
      {"shards",
       "label-sorted data cut into num_clients*shards_per_client shards, k per client",
       {opt_int("shards_per_client", 2, "shards (label blocks) per client", 1)},
       [](const Config& cfg, const Dataset& train, Partition, int clients) {
         require_rows(cfg, train, clients);
         require_labels("shards", train);
         return partition_shards(train.labels, clients,
                                 static_cast<int>(cfg.get_int("data.partition.shards_per_client")),
                                 seed(cfg));
       }},
      {"natural",
       "the generator's own per-client blocks (synthetic and inline data)",
       {},
       [](const Config& cfg, const Dataset&, Partition natural, int clients) {
         require_all_clients(cfg, clients);
         require_usage(!natural.empty(),
                       "data.partition.name = natural needs a synthetic dataset; for '" +
                           cfg.get_string("data.name") + "' use iid, dirichlet or shards");
         return natural;
       }},
      {"pool",
       "each client draws samples_per_client training rows with replacement from its own keyed "
       "stream, when it trains: nothing is stored per client, so a population may exceed the "
       "rows (10^7 clients on 60,000 rows)",
       {opt_int("samples_per_client", 10, "rows each client draws", 1)},
       {}},
  };
  return list;
}

Section partition_section() {
  Section s = slot_section("partition", "How training samples are assigned to clients.", "auto",
                           partitions());
  s.options = {opt_enum(
      "byzantine_data", "same", {"same", "iid", "none"},
      "the Byzantine clients' data (attack.*): same: partitioned with everyone; iid: the honest "
      "clients split all rows by this partition and each Byzantine client holds an iid "
      "1/(honest count) share of all rows; none: the honest clients split all rows, the "
      "Byzantine hold none (attacks that do not train only). Note [Byzantine data]")};
  return s;
}

Partition make_partition(const Config& cfg, const Dataset& train, Partition natural,
                         int clients) {
  const std::string name = cfg.get_string("data.partition.name");
  const auto* r = find_registration(partitions(), name);
  if (r == nullptr || !r->make) throw std::logic_error("no stored partition " + name);
  return r->make(cfg, train, std::move(natural), clients);
}

// Note [Byzantine data]
// In the papers on robust aggregation under heterogeneity (Karimireddy, He and Jaggi 2022) the
// honest workers hold all the data, label-sorted, and the Byzantine workers sample the whole
// training set iid. data.partition.byzantine_data expresses this: the partition splits the rows
// among the h = n - f honest clients only (the k-th honest part goes to the k-th honest id in
// ascending order), and then
//   iid:  one uniformly random permutation of all rows from Rng(seed, 1, kGlobalClient,
//         Purpose::kPartition) is cut into h near-equal consecutive parts; the j-th Byzantine
//         client (ascending ids) holds part j mod h. The Byzantine rows overlap the honest ones
//         and, while f <= h, not each other's;
//   none: the Byzantine clients hold no rows, so only attacks whose clients do not train
//         (omniscient ones, dropout) are allowed, checked where the attack is known.
// same keeps every client in one partition, as before.
Partition place_byzantine(Partition honest, const std::vector<int>& byzantine, int num_clients,
                          const std::string& share, std::int64_t rows, std::uint64_t seed) {
  const int h = num_clients - static_cast<int>(byzantine.size());
  if (static_cast<int>(honest.size()) != h)
    throw std::logic_error("place_byzantine: the honest partition has the wrong size");
  if (share != "iid" && share != "none")
    throw std::logic_error("place_byzantine: share must be iid or none");
  std::vector<char> is_byz(static_cast<std::size_t>(num_clients), 0);
  for (const int c : byzantine) is_byz.at(static_cast<std::size_t>(c)) = 1;

  Partition p(static_cast<std::size_t>(num_clients));
  std::size_t next = 0;
  for (int c = 0; c < num_clients; ++c)
    if (!is_byz[static_cast<std::size_t>(c)]) p[static_cast<std::size_t>(c)] = std::move(honest[next++]);
  if (share == "none" || byzantine.empty()) return p;

  Rng rng(seed, 1, kGlobalClient, Purpose::kPartition);
  const std::vector<std::int64_t> order = shuffled_rows(rows, rng);
  const auto cut = [&](std::int64_t k) {
    return static_cast<std::int64_t>(static_cast<__int128>(k) * rows / h);
  };
  for (std::size_t j = 0; j < byzantine.size(); ++j) {
    const std::int64_t part = static_cast<std::int64_t>(j) % h;
    auto& dst = p[static_cast<std::size_t>(byzantine[j])];
    dst.assign(order.begin() + cut(part), order.begin() + cut(part + 1));
    std::sort(dst.begin(), dst.end());
  }
  return p;
}

}  // namespace cohort::data
