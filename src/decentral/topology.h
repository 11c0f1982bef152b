// Communication graphs and mixing matrices of decentralized learning (docs/algorithms.md §5).
//
// Note [Mixing matrices]
// A topology is an undirected simple graph on the n nodes (clients.num_clients), built from the
// config identically on every rank: ring, torus r x c, hypercube, exponential, complete, star,
// erdos_renyi G(n, p) (re-drawn from the (seed, attempt, kTopology) streams until connected, at
// most topology.max_draws times), an edge-list file, or random_matching, the only time-varying
// one: a fresh uniformly random perfect matching each round, drawn from the (seed, round,
// kTopology) stream (one node left alone when n is odd). Static graphs must be connected.
// The mixing matrix W is stored as sparse rows: node i's row lists (j, w_ij) for j in N(i) and
// i itself, ascending in j. uniform: w_ij = 1/(deg_i + 1), defined only for regular graphs
// (where it is symmetric); metropolis: w_ij = 1/(1 + max(deg_i, deg_j)), w_ii = 1 - sum of the
// others; a matching gives 1/2 to both ends of each pair. Every W is checked symmetric with rows
// summing to 1 (to 1e-12) when built, so it is doubly stochastic. The spectral gap
// 1 - max(|lambda_2|, |lambda_n|) of a static W comes from a dense symmetric eigensolver (Eigen)
// at start-up, for n up to kMaxGapNodes (NaN beyond, and for random_matching).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/registration.h"

namespace cohort::decentral {

struct Graph {
  int n = 0;
  std::vector<std::vector<int>> adj;  // neighbours of each node, ascending, no self-loops
  int degree(int i) const { return static_cast<int>(adj[static_cast<std::size_t>(i)].size()); }
  std::int64_t edges() const;
  bool connected() const;
  bool regular() const;
};

// One row of W: (j, w_ij), ascending in j, the node itself included.
using MixingRow = std::vector<std::pair<int, double>>;
using Mixing = std::vector<MixingRow>;

enum class Weights { kUniform, kMetropolis };

// The named graphs. UsageError naming the key for an impossible size (hypercube: n a power of
// two; torus: rows x cols = n).
Graph ring(int n);
Graph torus(int rows, int cols);
void hypercube_size_check(int n);  // UsageError unless n is a power of two
Graph hypercube(int n);
Graph exponential(int n);
Graph complete(int n);
Graph star(int n);
// G(n, p) from the seed; redrawn until connected, at most max_draws times (UsageError after).
Graph erdos_renyi(int n, double p, std::uint64_t seed, int max_draws);
// The round's perfect matching (one node unmatched when n is odd).
Graph random_matching(int n, std::uint64_t seed, std::uint32_t round);
// An edge list: one "i j" pair per line (0-based node ids; '#' starts a comment). UsageError
// naming the file and line for a malformed line, a self-loop, an id out of [0, n), a duplicate
// edge, and (for the whole file) a disconnected graph.
Graph read_edges(const std::string& path, int n);

// W of the graph (Note [Mixing matrices]); UsageError for uniform on a non-regular graph.
Mixing mixing(const Graph& g, Weights w);
// Throws std::logic_error unless W is symmetric and its rows sum to 1 (to 1e-12).
void check_doubly_stochastic(const Mixing& w);
inline constexpr int kMaxGapNodes = 4096;
// 1 - max(|lambda_2|, |lambda_n|) of W (NaN for n > kMaxGapNodes).
double spectral_gap(const Mixing& w);

// The topology section of the config: its schema, and the graph it describes.
struct TopologyOptions {
  std::string name = "ring";
  Weights weights = Weights::kMetropolis;
  int rows = 0, cols = 0;   // torus
  double p = 0;             // erdos_renyi
  std::uint64_t seed = 0;   // erdos_renyi: the draw's seed (the run seed when 0)
  int max_draws = 100;      // erdos_renyi
  std::string path;         // edges
  bool time_varying() const { return name == "random_matching"; }
  static TopologyOptions from_config(const Config& cfg);
};
Section topology_section();

// The checks of the options against n nodes that need no graph (sizes; UsageError).
void check_topology(const TopologyOptions& o, int n);
// The graph of round `round` (the same every round unless time-varying).
Graph build_graph(const TopologyOptions& o, int n, std::uint64_t run_seed, std::uint32_t round);

}  // namespace cohort::decentral
