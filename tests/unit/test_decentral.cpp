// Decentralized learning against closed forms and hand computations (docs/algorithms.md §5).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "algo/run_schema.h"
#include "algo/runner.h"
#include "algo/sampling.h"
#include "app/hdf5_input.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "core/rng.h"
#include "decentral/topology.h"
#include "test_support.h"

using namespace cohort;
using namespace cohort::decentral;

namespace {

std::string tmp_path(const std::string& name) { return test::temp_h5("dec", name); }

algo::RunOutcome run_text(const std::string& text, const std::vector<std::string>& extra,
                          const std::string& path) {
  auto outcome = test::run_config_text(text, extra, path);
  REQUIRE(outcome.status == "completed");
  return outcome;
}

std::vector<float> read(const std::string& path, const std::string& name) {
  return read_hdf5_floats(path, name, 1, 1).data;
}

// The four ring nodes' starting models of the hand computations below: x_i = 0 + 1 * N(0, 1)
// from the node's (seed, 0, i, kNodeInit) stream, rounded to float32 as the run stores them.
void ring4_start(std::uint64_t seed, double x[4][3]) {
  for (int i = 0; i < 4; ++i) {
    Rng rng(seed, 0, static_cast<std::uint32_t>(i), Purpose::kNodeInit);
    for (int k = 0; k < 3; ++k) x[i][k] = static_cast<float>(0.0f + 1.0 * rng.normal());
  }
}

// The mean of four 3-D node models into mean; returns the consensus distance
// (1/4) sum_i |x_i - mean|^2.
double ring4_consensus(const double x[4][3], double mean[3]) {
  double dist = 0;
  for (int k = 0; k < 3; ++k) mean[k] = 0;
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) mean[k] += x[i][k] / 4;
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) dist += (x[i][k] - mean[k]) * (x[i][k] - mean[k]) / 4;
  return dist;
}

// One gossip step of the ring of four with Metropolis weights 1/3 and step gamma, among the
// active nodes: x_i += gamma sum_{active neighbours j} (m_j - m_i) / 3 for active i (m the
// messages: Choco's public copies, naive gossip's Q(x)); inactive nodes keep x_i.
void ring4_mix(double x[4][3], const double m[4][3], const bool active[4], double gamma) {
  double next[4][3];
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) {
      next[i][k] = x[i][k];
      if (!active[i]) continue;
      for (int j : {(i + 3) % 4, (i + 1) % 4})
        if (active[j]) next[i][k] += gamma * (m[j][k] - m[i][k]) / 3;
    }
  std::copy(&next[0][0], &next[0][0] + 12, &x[0][0]);
}

constexpr bool kAll[4] = {true, true, true, true};

// The index of the largest |v_k| of a 3-vector (the first of equals): top-1's choice.
int top1_index(const double v[3]) {
  int best = 0;
  for (int k = 1; k < 3; ++k)
    if (std::fabs(v[k]) > std::fabs(v[best])) best = k;
  return best;
}

// W as a dense matrix, for the checks below.
std::vector<std::vector<double>> dense(const Mixing& w) {
  std::vector<std::vector<double>> m(w.size(), std::vector<double>(w.size(), 0.0));
  for (std::size_t i = 0; i < w.size(); ++i)
    for (const auto& [j, v] : w[i]) m[i][static_cast<std::size_t>(j)] = v;
  return m;
}

}  // namespace

TEST_CASE("decentral: the named graphs have their degrees and are connected", "[decentral]") {
  auto degrees = [](const Graph& g) {
    std::set<int> d;
    for (int i = 0; i < g.n; ++i) d.insert(g.degree(i));
    return d;
  };
  REQUIRE(degrees(ring(8)) == std::set<int>{2});
  REQUIRE(degrees(torus(3, 4)) == std::set<int>{4});
  REQUIRE(degrees(hypercube(16)) == std::set<int>{4});
  REQUIRE(degrees(exponential(8)) == std::set<int>{5});  // +-1, +-2, 4
  REQUIRE(degrees(complete(5)) == std::set<int>{4});
  REQUIRE(star(6).degree(0) == 5);
  REQUIRE(star(6).degree(3) == 1);
  REQUIRE(exponential(8).adj[0] == std::vector<int>{1, 2, 4, 6, 7});
  for (const Graph& g : {ring(8), torus(3, 4), hypercube(16), exponential(9), complete(5), star(6)})
    REQUIRE(g.connected());
  REQUIRE(test::usage_error_of([] { hypercube(12); }).find("power of two") != std::string::npos);
}

TEST_CASE("decentral: mixing matrices are symmetric and doubly stochastic", "[decentral]") {
  for (const Graph& g : {ring(7), torus(3, 5), hypercube(8), exponential(10), complete(6), star(9),
                         erdos_renyi(20, 0.3, 4, 100), random_matching(9, 1, 3)}) {
    const Mixing w = mixing(g, Weights::kMetropolis);
    REQUIRE_NOTHROW(check_doubly_stochastic(w));
    const auto m = dense(w);
    for (std::size_t i = 0; i < m.size(); ++i) {
      double row = 0, col = 0;
      for (std::size_t j = 0; j < m.size(); ++j) {
        row += m[i][j];
        col += m[j][i];
        REQUIRE(m[i][j] == m[j][i]);
        REQUIRE(m[i][j] >= 0);
      }
      REQUIRE(row == Approx(1).margin(1e-12));
      REQUIRE(col == Approx(1).margin(1e-12));
    }
  }
  // Metropolis on a star: w_0j = 1/(1 + 8), w_jj = 8/9, w_00 = 1 - 8/9.
  const auto s = dense(mixing(star(9), Weights::kMetropolis));
  REQUIRE(s[0][3] == Approx(1.0 / 9));
  REQUIRE(s[3][3] == Approx(8.0 / 9));
  REQUIRE(s[0][0] == Approx(1.0 / 9));
  // uniform exists only on regular graphs.
  REQUIRE(test::usage_error_of([] { mixing(star(5), Weights::kUniform); })
              .find("regular graphs") != std::string::npos);
  REQUIRE(dense(mixing(ring(5), Weights::kUniform))[2][3] == Approx(1.0 / 3));
}

TEST_CASE("decentral: spectral gaps equal the closed forms", "[decentral]") {
  // Ring with uniform weights 1/3: lambda_k = (1 + 2 cos(2 pi k / n)) / 3.
  for (int n : {5, 8, 25}) {
    double l2 = -1, ln = 2;
    for (int k = 1; k < n; ++k) {
      const double l = (1 + 2 * std::cos(2 * M_PI * k / n)) / 3;
      l2 = std::max(l2, l);
      ln = std::min(ln, l);
    }
    const double want = 1 - std::max(std::fabs(l2), std::fabs(ln));
    REQUIRE(spectral_gap(mixing(ring(n), Weights::kUniform)) == Approx(want).margin(1e-12));
  }
  // n = 25: 1 - (1 + 2 cos(2 pi / 25)) / 3.
  REQUIRE(spectral_gap(mixing(ring(25), Weights::kUniform)) ==
          Approx(1 - (1 + 2 * std::cos(2 * M_PI / 25)) / 3).margin(1e-12));
  // Complete with uniform weights: W = J / n, every other eigenvalue 0.
  REQUIRE(spectral_gap(mixing(complete(7), Weights::kUniform)) == Approx(1).margin(1e-12));
  // Hypercube of dimension k with uniform 1/(k + 1): eigenvalues (1 + k - 2m)/(k + 1), gap
  // 2/(k + 1).
  for (int k : {2, 3, 5})
    REQUIRE(spectral_gap(mixing(hypercube(1 << k), Weights::kUniform)) ==
            Approx(2.0 / (k + 1)).margin(1e-12));
}

TEST_CASE("decentral: random matchings are perfect, fresh each round, keyed", "[decentral]") {
  for (int n : {8, 9}) {
    const Graph a = random_matching(n, 5, 0), b = random_matching(n, 5, 1);
    int alone = 0;
    for (int i = 0; i < n; ++i) {
      REQUIRE(a.degree(i) <= 1);
      if (a.degree(i) == 0) ++alone;
    }
    REQUIRE(alone == n % 2);
    REQUIRE(a.adj != b.adj);
    REQUIRE(random_matching(n, 5, 1).adj == b.adj);
  }
  // G(n, p) too sparse to connect: a clear error after max_draws.
  REQUIRE(test::usage_error_of([] { erdos_renyi(30, 0.01, 1, 5); }).find("no connected") !=
          std::string::npos);
}

TEST_CASE("decentral: edge lists report the file and line of every mistake", "[decentral]") {
  auto write = [](const std::string& name, const std::string& text) {
    const std::string p = (std::filesystem::temp_directory_path() /
                           ("cohort_test_dec_" + std::to_string(getpid()) + "_" + name + ".txt"))
                              .string();
    std::ofstream(p) << text;
    return p;
  };
  const std::string ok = write("ok", "# a square\n0 1\n1 2\n2 3  # comment\n3 0\n");
  const Graph g = read_edges(ok, 4);
  REQUIRE(g.edges() == 4);
  REQUIRE(g.adj[0] == std::vector<int>{1, 3});
  struct Case {
    std::string name, text, want;
  };
  const std::vector<Case> cases = {
      {"disc", "0 1\n2 3\n", "is not connected"},
      {"loop", "0 1\n1 1\n1 2\n2 3\n", ":2: self-loop 1 1"},
      {"range", "0 1\n1 2\n2 7\n", ":3: node id 7 is out of range"},
      {"dup", "0 1\n1 2\n2 1\n2 3\n", ":3: duplicate edge 2 1"},
      {"bad", "0 1\n1 x\n", ":2: 'x' is not a node id"},
      {"one", "0 1\n2\n", ":2: expected two node ids"},
  };
  for (const auto& c : cases) {
    const std::string p = write(c.name, c.text);
    const std::string msg = test::usage_error_of([&] { read_edges(p, 4); });
    INFO(msg);
    REQUIRE(msg.find(p) != std::string::npos);
    REQUIRE(msg.find(c.want) != std::string::npos);
    std::filesystem::remove(p);
  }
  std::filesystem::remove(ok);
}

namespace {
// Six nodes on quadratic objectives of dim 3 (gossip ignores them), spread x_i = N(0, 1).
const std::string kGossip =
    "seed: 7\n"
    "data: {name: quadratic, dim: 3, x0: 0, record_x: true}\n"
    "clients: {num_clients: 6}\n"
    "algorithm: {name: gossip, init_spread: 1}\n"
    "eval: {every: 1}\n";
}  // namespace

TEST_CASE("decentral: gossip on complete reaches consensus in one step and keeps the average",
          "[decentral]") {
  const std::string path = tmp_path("gossip_complete");
  run_text("rounds: 1\n" + kGossip, {"topology.name=complete", "topology.weights=uniform"}, path);
  // Every node sums the same six models with weights 1/6 (its own as 1 - 5/6): equal to
  // float32 rounding.
  REQUIRE(read(path, "/rounds/consensus_distance")[0] < 1e-12);
  // On a ring the average stays where it started, up to float32 rounding of each node's model
  // (6 nodes, |x| < 5: a few 2^-24 relative per step).
  const std::string r1 = tmp_path("gossip_ring1"), r30 = tmp_path("gossip_ring30");
  run_text("rounds: 1\n" + kGossip, {"topology.name=ring"}, r1);
  run_text("rounds: 30\n" + kGossip, {"topology.name=ring"}, r30);
  const auto c = read(r30, "/rounds/consensus_distance");
  REQUIRE(c.back() < 1e-3 * c.front());  // converging
  for (const char* k : {"/rounds/x_0", "/rounds/x_1", "/rounds/x_2"}) {
    const auto a = read(r1, k), b = read(r30, k);
    REQUIRE(std::fabs(b.back() - a.front()) < 30 * 5 * std::ldexp(1.0, -24) * 4);
  }
  for (const auto& p : {path, r1, r30}) std::filesystem::remove(p);
}

TEST_CASE("decentral: choco-gossip with top-1 on a ring follows the hand computation",
          "[decentral]") {
  // n = 4 on a ring, Metropolis weights 1/3 (every degree 2), gamma = 0.5, top-1 of x_i - x_hat_i
  // per node, x_hat = 0 at the start; x_i from the init spread, drawn here from the same keyed
  // streams. The hand computation replays the definition in double; the run's average model
  // (record_x) and consensus distance must follow it.
  const std::string text =
      "seed: 3\n"
      "data: {name: quadratic, dim: 3, x0: 0, record_x: true}\n"
      "clients: {num_clients: 4}\n"
      "algorithm: {name: choco_gossip, gamma: 0.5, init_spread: 1}\n"
      "compressor: {name: topk, k: 1, scope: global}\n"
      "topology: {name: ring}\n"
      "eval: {every: 1}\n";
  // The starting models: x_i = 0 + 1 * N(0, 1) from the node's (seed, 0, i, kNodeInit) stream.
  double x[4][3], hat[4][3] = {};
  ring4_start(3, x);
  const std::string path = tmp_path("choco_hand");
  run_text("rounds: 4\n" + text, {}, path);
  const std::vector<float> xs[3] = {read(path, "/rounds/x_0"), read(path, "/rounds/x_1"),
                                    read(path, "/rounds/x_2")};
  const auto cons = read(path, "/rounds/consensus_distance");
  double mean0[3];
  ring4_consensus(x, mean0);
  for (int round = 0; round < 4; ++round) {
    // q_i = top-1(x_i - hat_i); hat_i += q_i; x_i += gamma sum_j w_ij (hat_j - hat_i).
    for (int i = 0; i < 4; ++i) {
      const double diff[3] = {x[i][0] - hat[i][0], x[i][1] - hat[i][1], x[i][2] - hat[i][2]};
      const int best = top1_index(diff);
      hat[i][best] += diff[best];
    }
    ring4_mix(x, hat, kAll, 0.5);
    double mean[3];
    const double dist = ring4_consensus(x, mean);
    for (int k = 0; k < 3; ++k) {
      INFO("round " << round + 1 << " coordinate " << k);
      REQUIRE(xs[k][static_cast<std::size_t>(round)] == Approx(mean[k]).margin(1e-6));
      // Choco keeps the average of x (not of x_hat).
      REQUIRE(mean[k] == Approx(mean0[k]).margin(1e-12));
    }
    REQUIRE(cons[static_cast<std::size_t>(round)] == Approx(dist).epsilon(1e-5));
  }
  double hat_mean = 0;
  for (int i = 0; i < 4; ++i) hat_mean += hat[i][0] / 4;
  REQUIRE(std::fabs(hat_mean - mean0[0]) > 1e-3);  // x_hat's average moves
  std::filesystem::remove(path);
}

TEST_CASE("decentral: naive compressed gossip follows the hand computation and stalls",
          "[decentral]") {
  // n = 4 on a ring, Metropolis weights 1/3, gamma = 0.5, Q = top-1 of the model itself:
  // x_i <- x_i + gamma sum_j w_ij (Q(x_j) - Q(x_i)), replayed here in double.
  const std::string text =
      "seed: 3\n"
      "data: {name: quadratic, dim: 3, x0: 0, record_x: true}\n"
      "clients: {num_clients: 4}\n"
      "algorithm: {name: naive_gossip, gamma: 0.5, init_spread: 1}\n"
      "compressor: {name: topk, k: 1, scope: global}\n"
      "topology: {name: ring}\n"
      "eval: {every: 1}\n";
  double x[4][3];
  ring4_start(3, x);
  double mean0[3];
  ring4_consensus(x, mean0);
  const std::string path = tmp_path("naive_hand");
  run_text("rounds: 4\n" + text, {}, path);
  const std::vector<float> xs[3] = {read(path, "/rounds/x_0"), read(path, "/rounds/x_1"),
                                    read(path, "/rounds/x_2")};
  const auto cons = read(path, "/rounds/consensus_distance");
  const auto bits = read(path, "/rounds/bits_per_node");
  for (int round = 0; round < 4; ++round) {
    double q[4][3] = {};
    for (int i = 0; i < 4; ++i) q[i][top1_index(x[i])] = x[i][top1_index(x[i])];
    ring4_mix(x, q, kAll, 0.5);
    double mean[3];
    const double dist = ring4_consensus(x, mean);
    for (int k = 0; k < 3; ++k) {
      INFO("round " << round + 1 << " coordinate " << k);
      REQUIRE(xs[k][static_cast<std::size_t>(round)] == Approx(mean[k]).margin(1e-6));
      REQUIRE(mean[k] == Approx(mean0[k]).margin(1e-12));  // the average is kept
    }
    REQUIRE(cons[static_cast<std::size_t>(round)] == Approx(dist).epsilon(1e-5));
    // Each node broadcasts its top-1 encoding once: the compressor's bits, not 32 d.
    REQUIRE(bits[static_cast<std::size_t>(round)] < 32 * 3);
  }
  std::filesystem::remove(path);

  // With random-k (k = d/10, a fresh draw per node and round) the compression error of the models
  // themselves, of the order of |x|, never shrinks: started around x0 = 10, naive gossip levels
  // off at a floor above its start, while Choco, with the same compressor and step, compresses
  // x_i - x_hat_i, which vanishes, and keeps converging (docs/algorithms.md §5).
  const std::string big =
      "seed: 5\n"
      "data: {name: quadratic, dim: 200, x0: 10}\n"
      "clients: {num_clients: 8}\n"
      "compressor: {name: randk, k: 20, scope: global}\n"
      "topology: {name: ring}\n"
      "eval: {every: 0}\n";
  const std::string naive = tmp_path("naive_stall"), choco = tmp_path("choco_conv");
  run_text("rounds: 600\n" + big + "algorithm: {name: naive_gossip, gamma: 0.05, init_spread: 1}\n",
           {}, naive);
  run_text("rounds: 600\n" + big + "algorithm: {name: choco_gossip, gamma: 0.05, init_spread: 1}\n",
           {}, choco);
  const auto cn = read(naive, "/rounds/consensus_distance");
  const auto cc = read(choco, "/rounds/consensus_distance");
  INFO("naive " << cn.front() << " -> " << cn[299] << " -> " << cn.back() << "; choco "
                << cc.front() << " -> " << cc.back());
  REQUIRE(cc.back() < 1e-4 * cc.front());  // Choco converges (183 -> 5e-4 at this seed)
  REQUIRE(cn.back() > 0.5 * cn.front());   // naive gossip does not (183 -> about 300),
  REQUIRE(cn.back() > 0.5 * cn[299]);      // and no longer moves off its floor
  std::filesystem::remove(naive);
  std::filesystem::remove(choco);
}

TEST_CASE("decentral: naive gossip with some nodes inactive mixes only the active ones",
          "[decentral]") {
  // The hand computation of the test above with clients.per_round = 2 of 4: the round's active
  // nodes A (algo::sample_clients, as the run draws them) mix with W restricted to A (w_ij = 1/3
  // for active ring neighbours, w_ii = 1 minus those); inactive nodes keep their model.
  const std::string text =
      "seed: 3\n"
      "data: {name: quadratic, dim: 3, x0: 0, record_x: true}\n"
      "clients: {num_clients: 4, per_round: 2}\n"
      "algorithm: {name: naive_gossip, gamma: 0.5, init_spread: 1}\n"
      "compressor: {name: topk, k: 1, scope: global}\n"
      "topology: {name: ring}\n"
      "eval: {every: 1}\n";
  double x[4][3];
  ring4_start(3, x);
  const std::string path = tmp_path("naive_partial");
  run_text("rounds: 6\n" + text, {}, path);
  const std::vector<float> xs[3] = {read(path, "/rounds/x_0"), read(path, "/rounds/x_1"),
                                    read(path, "/rounds/x_2")};
  const auto cons = read(path, "/rounds/consensus_distance");
  int rounds_with_an_edge = 0;
  for (int round = 0; round < 6; ++round) {
    const auto active = algo::sample_clients(3, static_cast<std::uint32_t>(round), 4, 2);
    REQUIRE(active.size() == 2);
    bool on[4] = {};
    for (int c : active) on[c] = true;
    double q[4][3] = {};
    for (int i = 0; i < 4; ++i) q[i][top1_index(x[i])] = x[i][top1_index(x[i])];
    if ((active[0] + 1) % 4 == active[1] || (active[1] + 1) % 4 == active[0]) ++rounds_with_an_edge;
    ring4_mix(x, q, on, 0.5);  // inactive nodes keep their model
    // The average is kept whoever mixes; the consensus distance tells the active sets apart.
    double mean[3];
    const double dist = ring4_consensus(x, mean);
    INFO("round " << round + 1 << " active " << active[0] << "," << active[1]);
    for (int k = 0; k < 3; ++k)
      REQUIRE(xs[k][static_cast<std::size_t>(round)] == Approx(mean[k]).margin(1e-6));
    REQUIRE(cons[static_cast<std::size_t>(round)] == Approx(dist).epsilon(1e-5));
  }
  REQUIRE(rounds_with_an_edge > 0);  // some round mixed (two active neighbours)
  std::filesystem::remove(path);
}

TEST_CASE("decentral: dsgd on complete with uniform weights and K = 1 is server-only SGD",
          "[decentral]") {
  const std::string quad =
      "rounds: 60\n"
      "data: {name: quadratic, dim: 2, h: [1, 2, 3, 1, 5, 2], a: [1, -1, 0, 2, -2, 1], x0: 0}\n"
      "clients: {num_clients: 3}\n"
      "eval: {every: 0}\n";
  const auto dsgd = run_text(quad +
                                 "algorithm: {name: dsgd, local_steps: 1, batch_size: 0, "
                                 "local_lr: 0.1}\ntopology: {name: complete, weights: uniform}\n",
                             {}, tmp_path("dsgd_complete"));
  const auto sgd = run_text(quad + "algorithm: {name: sgd, batch_size: 0}\n"
                                   "server_optimizer: {name: sgd, lr: 0.1}\n",
                            {}, tmp_path("sgd_server"));
  for (int k = 0; k < 2; ++k) REQUIRE(dsgd.final_model[k] == Approx(sgd.final_model[k]).margin(1e-6));
  // And both reach the optimum of the mean objective, sum h a / sum h per coordinate.
  REQUIRE(dsgd.final_model[0] == Approx((1 * 1 + 3 * 0 + 5 * -2) / 9.0).margin(1e-4));
  std::filesystem::remove(tmp_path("dsgd_complete"));
  std::filesystem::remove(tmp_path("sgd_server"));
}
