#include "decentral/topology.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include <Eigen/Dense>
#include <fmt/format.h>

#include "core/errors.h"
#include "core/rng.h"

namespace cohort::decentral {
namespace {

Graph empty_graph(int n) {
  Graph g;
  g.n = n;
  g.adj.assign(static_cast<std::size_t>(n), {});
  return g;
}

void add_edge(Graph& g, int i, int j) {
  if (i == j) return;
  g.adj[static_cast<std::size_t>(i)].push_back(j);
  g.adj[static_cast<std::size_t>(j)].push_back(i);
}

// Sorts every list and drops repeated edges (the named graphs may name an edge twice for small n).
Graph finish(Graph g) {
  for (auto& a : g.adj) {
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
  }
  return g;
}

}  // namespace

std::int64_t Graph::edges() const {
  std::int64_t e = 0;
  for (const auto& a : adj) e += static_cast<std::int64_t>(a.size());
  return e / 2;
}

bool Graph::connected() const {
  if (n <= 1) return true;
  std::vector<char> seen(static_cast<std::size_t>(n), 0);
  std::vector<int> stack = {0};
  seen[0] = 1;
  int count = 1;
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    for (int j : adj[static_cast<std::size_t>(i)])
      if (!seen[static_cast<std::size_t>(j)]) {
        seen[static_cast<std::size_t>(j)] = 1;
        ++count;
        stack.push_back(j);
      }
  }
  return count == n;
}

bool Graph::regular() const {
  for (int i = 1; i < n; ++i)
    if (degree(i) != degree(0)) return false;
  return true;
}

Graph ring(int n) {
  Graph g = empty_graph(n);
  for (int i = 0; i < n; ++i) add_edge(g, i, (i + 1) % n);
  return finish(std::move(g));
}

Graph torus(int rows, int cols) {
  Graph g = empty_graph(rows * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const int i = r * cols + c;
      add_edge(g, i, r * cols + (c + 1) % cols);
      add_edge(g, i, ((r + 1) % rows) * cols + c);
    }
  return finish(std::move(g));
}

void hypercube_size_check(int n) {
  require_usage(n >= 1 && (n & (n - 1)) == 0,
                fmt::format("topology.name = hypercube needs clients.num_clients a power of two, "
                            "got {}",
                            n));
}

Graph hypercube(int n) {
  hypercube_size_check(n);
  Graph g = empty_graph(n);
  for (int i = 0; i < n; ++i)
    for (int bit = 1; bit < n; bit <<= 1) add_edge(g, i, i ^ bit);
  return finish(std::move(g));
}

Graph exponential(int n) {
  Graph g = empty_graph(n);
  if (n <= 1) return g;
  for (int i = 0; i < n; ++i)
    for (long long hop = 1; hop <= n - 1; hop <<= 1) {
      add_edge(g, i, static_cast<int>((i + hop) % n));
      add_edge(g, i, static_cast<int>(((i - hop) % n + n) % n));
    }
  return finish(std::move(g));
}

Graph complete(int n) {
  Graph g = empty_graph(n);
  for (int i = 0; i < n; ++i) {
    auto& a = g.adj[static_cast<std::size_t>(i)];
    for (int j = 0; j < n; ++j)
      if (j != i) a.push_back(j);
  }
  return g;
}

Graph star(int n) {
  Graph g = empty_graph(n);
  for (int i = 1; i < n; ++i) add_edge(g, 0, i);
  return finish(std::move(g));
}

Graph erdos_renyi(int n, double p, std::uint64_t seed, int max_draws) {
  for (int attempt = 0; attempt < max_draws; ++attempt) {
    Rng rng(seed, static_cast<std::uint32_t>(attempt), kGlobalClient, Purpose::kTopology);
    Graph g = empty_graph(n);
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j)
        if (rng.uniform() < p) add_edge(g, i, j);
    g = finish(std::move(g));
    if (g.connected()) return g;
  }
  throw UsageError(fmt::format(
      "topology.name = erdos_renyi: no connected G(n = {}, p = {}) in {} draws "
      "(topology.max_draws); raise topology.p (connectivity needs p above about ln(n)/n = {:.3g}) "
      "or topology.max_draws",
      n, p, max_draws, n > 1 ? std::log(static_cast<double>(n)) / n : 0.0));
}

Graph random_matching(int n, std::uint64_t seed, std::uint32_t round) {
  Rng rng(seed, round, kGlobalClient, Purpose::kTopology);
  std::vector<int> order(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  for (int i = n - 1; i > 0; --i)  // Fisher-Yates
    std::swap(order[static_cast<std::size_t>(i)],
              order[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i) + 1))]);
  Graph g = empty_graph(n);
  for (int k = 0; k + 1 < n; k += 2)
    add_edge(g, order[static_cast<std::size_t>(k)], order[static_cast<std::size_t>(k + 1)]);
  return finish(std::move(g));
}

Graph read_edges(const std::string& path, int n) {
  std::ifstream in(path);
  require_usage(in.good(), fmt::format("topology.path: cannot open edge list '{}'", path));
  Graph g = empty_graph(n);
  std::set<std::pair<int, int>> seen;
  std::string line;
  long long number = 0;
  while (std::getline(in, line)) {
    ++number;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::string a, b, extra;
    if (!(ls >> a)) continue;  // blank or comment
    auto where = [&] { return fmt::format("{}:{}", path, number); };
    auto parse = [&](const std::string& s) {
      long long v = 0;
      std::size_t used = 0;
      try {
        v = std::stoll(s, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      require_usage(used == s.size() && used > 0,
                    fmt::format("{}: '{}' is not a node id (expected an integer)", where(), s));
      require_usage(v >= 0 && v < n, fmt::format("{}: node id {} is out of range: the run has {} "
                                                 "nodes (clients.num_clients), ids 0 to {}",
                                                 where(), v, n, n - 1));
      return static_cast<int>(v);
    };
    require_usage(static_cast<bool>(ls >> b),
                  fmt::format("{}: expected two node ids 'i j', got '{}'", where(), line));
    require_usage(!(ls >> extra),
                  fmt::format("{}: expected two node ids 'i j', got more: '{}'", where(), line));
    const int i = parse(a), j = parse(b);
    require_usage(i != j, fmt::format("{}: self-loop {} {}: a node does not gossip with itself "
                                      "through an edge",
                                      where(), i, j));
    const auto key = std::minmax(i, j);
    require_usage(seen.insert(key).second,
                  fmt::format("{}: duplicate edge {} {} (edges are undirected)", where(), i, j));
    add_edge(g, i, j);
  }
  g = finish(std::move(g));
  require_usage(g.connected(), fmt::format("{}: the graph is not connected: gossip cannot reach "
                                           "every node ({} nodes, {} edges)",
                                           path, n, g.edges()));
  return g;
}

Mixing mixing(const Graph& g, Weights w) {
  if (w == Weights::kUniform)
    require_usage(g.regular(),
                  "topology.weights = uniform (1/(deg + 1)) is symmetric only on regular graphs; "
                  "this graph's degrees differ: use topology.weights = metropolis");
  Mixing m(static_cast<std::size_t>(g.n));
  for (int i = 0; i < g.n; ++i) {
    MixingRow& row = m[static_cast<std::size_t>(i)];
    const auto& a = g.adj[static_cast<std::size_t>(i)];
    double others = 0;
    for (int j : a) {
      const double wij = w == Weights::kUniform
                             ? 1.0 / (g.degree(i) + 1)
                             : 1.0 / (1 + std::max(g.degree(i), g.degree(j)));
      row.emplace_back(j, wij);
      others += wij;
    }
    row.emplace_back(i, 1.0 - others);
    std::sort(row.begin(), row.end());
  }
  return m;
}

void check_doubly_stochastic(const Mixing& w) {
  const auto n = static_cast<int>(w.size());
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (const auto& [j, v] : w[static_cast<std::size_t>(i)]) {
      sum += v;
      const auto& other = w[static_cast<std::size_t>(j)];
      const auto it = std::lower_bound(other.begin(), other.end(), std::make_pair(i, -std::numeric_limits<double>::infinity()));
      if (it == other.end() || it->first != i || std::fabs(it->second - v) > 1e-12)
        throw std::logic_error(fmt::format("mixing matrix not symmetric at ({}, {})", i, j));
    }
    if (std::fabs(sum - 1.0) > 1e-12)
      throw std::logic_error(fmt::format("mixing matrix row {} sums to {}", i, sum));
  }
}

double spectral_gap(const Mixing& w) {
  const auto n = static_cast<Eigen::Index>(w.size());
  if (n > kMaxGapNodes) return NAN;
  if (n == 1) return 1.0;
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (const auto& [j, v] : w[static_cast<std::size_t>(i)]) m(i, j) = v;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(m, Eigen::EigenvaluesOnly);
  // Ascending eigenvalues: lambda_1 = 1 is the largest; lambda_2 the second largest, lambda_n
  // the smallest.
  const auto& ev = es.eigenvalues();
  return 1.0 - std::max(std::fabs(ev(n - 2)), std::fabs(ev(0)));
}

TopologyOptions TopologyOptions::from_config(const Config& cfg) {
  TopologyOptions o;
  o.name = cfg.get_string("topology.name");
  o.weights = cfg.get_string("topology.weights") == "uniform" ? Weights::kUniform
                                                              : Weights::kMetropolis;
  if (o.name == "torus") {
    o.rows = static_cast<int>(cfg.get_int("topology.rows"));
    o.cols = static_cast<int>(cfg.get_int("topology.cols"));
  } else if (o.name == "erdos_renyi") {
    o.p = cfg.get_float("topology.p");
    o.seed = static_cast<std::uint64_t>(cfg.get_int("topology.seed"));
    o.max_draws = static_cast<int>(cfg.get_int("topology.max_draws"));
  } else if (o.name == "edges") {
    o.path = cfg.get_string("topology.path");
    require_usage(!o.path.empty(), "topology.name = edges needs topology.path (an edge list file)");
  }
  return o;
}

Section topology_section() {
  using R = Registration<void()>;
  static const std::vector<R> list = {
      {"ring", "node i ~ i +- 1", {}, {}},
      {"torus",
       "rows x cols grid with wrap-around (4 neighbours)",
       {opt_int("rows", 4, "rows r (r x cols = clients.num_clients)", 1),
        opt_int("cols", 4, "columns c", 1)},
       {}},
      {"hypercube", "n = 2^k nodes, i ~ i xor 2^j", {}, {}},
      {"exponential", "i ~ i +- 2^j mod n, j = 0..floor(log2(n - 1))", {}, {}},
      {"complete", "every pair of nodes", {}, {}},
      {"star", "node 0 is the hub", {}, {}},
      {"erdos_renyi",
       "G(n, p), redrawn from the seed until connected",
       {opt_float("p", 0.2, "edge probability", 0, 1, true),
        opt_int64("seed", 0, "seed of the draw; 0: the run seed"),
        opt_int("max_draws", 100, "draws before giving up on a connected graph", 1)},
       {}},
      {"random_matching",
       "a fresh uniformly random perfect matching every round (time-varying)",
       {},
       {}},
      {"edges",
       "a user's edge list: one 'i j' pair of 0-based node ids per line",
       {opt_string("path", "", "the edge-list file")},
       {}},
  };
  Section s = slot_section("topology",
                           "The communication graph of decentralized algorithms (dsgd, gossip, "
                           "choco_*, gradient_tracking; docs/algorithms.md §5).",
                           "ring", list);
  s.options = {opt_enum("weights", "metropolis", {"metropolis", "uniform"},
                        "mixing weights: metropolis 1/(1 + max(deg_i, deg_j)), or uniform "
                        "1/(deg + 1) (regular graphs only)")};
  return s;
}

void check_topology(const TopologyOptions& o, int n) {
  if (o.name == "hypercube") hypercube_size_check(n);
  if (o.name == "torus")
    require_usage(static_cast<long long>(o.rows) * o.cols == n,
                  fmt::format("topology.rows x topology.cols = {} x {} = {} must equal "
                              "clients.num_clients = {}",
                              o.rows, o.cols, static_cast<long long>(o.rows) * o.cols, n));
  // The graph is held as neighbour lists on every rank (Note [Input sizes]).
  if (o.name == "complete" || o.name == "erdos_renyi") {
    const double entries = static_cast<double>(n) * (o.name == "complete" ? n - 1 : o.p * n);
    require_usage(entries <= 2e8,
                  fmt::format("topology.name = {} on {} nodes holds about {:.3g} neighbour entries "
                              "on every rank, above the limit of 2e8: use a sparser graph "
                              "(exponential, torus, ring)",
                              o.name, n, entries));
  }
}

Graph build_graph(const TopologyOptions& o, int n, std::uint64_t run_seed, std::uint32_t round) {
  check_topology(o, n);
  Graph g;
  if (o.name == "ring") g = ring(n);
  else if (o.name == "torus") g = torus(o.rows, o.cols); else if (o.name == "hypercube") g = hypercube(n);
  else if (o.name == "exponential") g = exponential(n);
  else if (o.name == "complete") g = complete(n);
  else if (o.name == "star") g = star(n);
  else if (o.name == "erdos_renyi") g = erdos_renyi(n, o.p, o.seed != 0 ? o.seed : run_seed, o.max_draws);
  else if (o.name == "random_matching") return random_matching(n, run_seed, round);
  else if (o.name == "edges") g = read_edges(o.path, n);
  else throw std::logic_error("unknown topology " + o.name);
  require_usage(g.connected(), fmt::format("topology.name = {} on {} nodes is not connected",
                                           o.name, n));
  return g;
}

}  // namespace cohort::decentral
