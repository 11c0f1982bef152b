// Decentralized learning (docs/algorithms.md §5): every client is a node with its own model,
// which it trains on its own data and mixes with its neighbours' over a graph; there is no server.
//
// Note [Decentralized rounds]
// A round activates the sampled nodes A (every node with clients.per_round = N; otherwise the
// round's sample). Inactive nodes keep their model and public copy and take no part: for an
// active node i the round's weights are W restricted to A, w_ij for active neighbours j and
// w_ii = 1 - sum of those, still symmetric and doubly stochastic on A. Per active node, in this
// order (η the local rate of the round, K local steps of the fedavg kind on the node's own
// minibatch stream):
//  - gossip:            x_i <- sum_j w_ij x_j.
//  - dsgd step_then_gossip (default): z_j = x_j after K local steps; x_i <- sum_j w_ij z_j.
//    gossip_then_step (D-PSGD): x_i <- sum_j w_ij x_j - (x_i - z_i), both at the old iterates.
//  - choco_gossip: q_i = Q(x_i - x̂_i); every holder of x̂_i adds decode(q_i) to it;
//    x_i <- x_i + γ sum_j w_ij (x̂_j - x̂_i) with the updated copies. choco_sgd first takes the K
//    local steps on x_i.
//  - naive_gossip, the compressed gossip that Choco improves on (Carli et al. 2007; "Q1" in
//    Koloskova et al. 2019): x_i <- x_i + γ sum_j w_ij (Q(x_j) - Q(x_i)), each node broadcasting
//    the encoding of Q(x_i). It keeps the average of x (W is symmetric and every neighbour
//    decodes the same Q(x_j)), but the compression error of the models themselves never shrinks,
//    so consensus stalls at a floor set by Q instead of converging.
//  - gradient_tracking (DIGing): x_i+ = sum_j w_ij x_j - η y_i; y_i+ = sum_j w_ij y_j +
//    g_i(x_i+) - g_i(x_i), with y_i = g_i(x_i) before the node's first round (a minibatch of
//    its control-gradient stream); g_i(x_i) is the gradient computed at the end of the node's
//    previous round. One gradient a round: it takes no local steps, and its reported loss is the
//    minibatch loss at x_i+.
// Sums over j run in ascending node order in double precision, and every message crosses ranks
// bit for bit (raw float32, or the compressor's encoding), so a node's new model does not depend
// on which rank holds which node: results are bitwise the same at any rank count.
//
// Phases, timed per rank and recorded as the round's time_* columns: `local` the nodes' own work
// (local steps, building and encoding messages), `comm` the neighbourhood exchange between ranks
// (packing, MPI, unpacking), `aggregate` the gossip within the rank (decoding, updating public
// copies, mixing, installing the new models); the metrics (average model, consensus distance,
// evaluation) are `eval`.
//
// Transport: rank r owns a contiguous block of nodes (algo::client_block). A node's message is
// computed once; neighbours on the same rank read it from memory, and each other rank that holds
// at least one active neighbour of the node receives it once, however many edges cross, through
// Communicator::neighbor_exchange among the ranks that share an edge of the graph (every rank for
// the time-varying random_matching). A rank receives only its nodes' off-rank neighbours'
// messages: on sparse graphs (ring, torus, exponential) the boundary of its block, on dense ones
// (complete, a star's hub) up to the whole population. Choco's public copies
// x̂_j of nodes held elsewhere are kept as ghosts by every rank with a neighbour of j and updated
// from the same q_j, so they equal the owner's x̂_j bit for bit; a checkpoint saves only the
// owners' copies and a resumed run sends the ghosts once, uncounted (restore_ghosts).
//
// Bits: a node that has at least one active neighbour sends its message once (a broadcast to its
// neighbours): 32 d bits raw, 64 d for gradient tracking's (x, y), the encoding of Q(x_i) for
// naive_gossip. An active choco node sends
// the encoding of q_i to all its neighbours, active or not, whenever it has any: every copy of
// x̂_i must take the same q_i, or the copies would drift apart.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "algo/fedavg.h"
#include "algo/problem.h"
#include "algo/sampling.h"
#include "comm/communicator.h"
#include "compress/compressor.h"
#include "core/client_store.h"
#include "core/config.h"
#include "core/worker_pool.h"
#include "decentral/topology.h"

namespace cohort::decentral {

enum class Method { kGossip, kDsgd, kChocoGossip, kChocoSgd, kNaiveGossip, kGradientTracking };

// Whether algorithm.name names a decentralized algorithm.
bool is_decentralized(const std::string& algorithm);
// Their registrations for the algorithm slot's schema (built by Network, not make_algorithm).
std::vector<Option> gossip_options();
std::vector<Option> dsgd_options();
std::vector<Option> choco_gossip_options();
std::vector<Option> choco_sgd_options();
std::vector<Option> naive_gossip_options();
std::vector<Option> gradient_tracking_options();

struct NetworkOptions {
  Method method = Method::kGossip;
  std::string name;
  bool gossip_then_step = false;  // dsgd's order
  double gamma = 1;               // choco's and naive_gossip's consensus step
  double init_spread = 0;         // x_i = x0 + sigma xi_i at the start
  algo::FedAvgOptions steps;      // the local steps (training methods)
  bool trains() const {
    return method != Method::kGossip && method != Method::kChocoGossip &&
           method != Method::kNaiveGossip;
  }
  bool choco() const { return method == Method::kChocoGossip || method == Method::kChocoSgd; }
  // Whether messages go through the run's compressor.
  bool compresses() const { return choco() || method == Method::kNaiveGossip; }
  // The algorithm.* keys and the checks of the rest of the config against a decentralized run
  // (UsageError naming the key).
  static NetworkOptions from_config(const Config& cfg);
};

class Network {
 public:
  // Builds the graph and W (collective-free: every rank builds the same) and the node state of
  // this rank's block `mine` in `store`: node models from x0 (plus the initial spread).
  Network(const Config& cfg, comm::Communicator& comm, algo::Problem& problem, ClientStore& store,
          algo::ClientBlock mine, const std::vector<float>& x0);

  struct RoundResult {
    std::vector<double> losses;     // this rank's active training nodes' mean local losses
    std::int64_t bits = 0;          // all nodes' sent bits
    std::int64_t senders = 0;       // nodes that sent
    std::vector<std::int64_t> node_bits;  // per active node (`active` order); 0 for other ranks'
    bool valid = true;              // every node model finite after the round
    // Seconds of this rank's phases: local work, exchange between ranks, gossip within the rank.
    double seconds_local = 0, seconds_exchange = 0, seconds_mix = 0;
  };
  // Collective: one round (Note [Decentralized rounds]) over the sorted active nodes.
  RoundResult step(std::uint32_t round, const std::vector<int>& active, WorkerPool& workers);
  // Collective: x_bar (d floats) <- the mean of all nodes' models, exactly; returns the consensus
  // distance (1/n) sum_i |x_i - x_bar|^2.
  double average(float* x_bar);
  // This rank's nodes' models, in node order (evaluation).
  const float* node_model(int node) const;
  // Collective, after a checkpoint is loaded: the ghosts of choco's public copies.
  void restore_ghosts();

  std::string describe() const;
  // The local rate of the round for the training methods (NaN for gossip and choco_gossip).
  double local_lr(std::uint32_t round) const {
    return o_.trains() ? o_.steps.schedule.at(round) : NAN;
  }
  double spectral_gap() const { return gap_; }
  int neighbour_ranks() const { return static_cast<int>(peers_.size()); }

 private:
  int owner(int node) const;  // the rank whose block holds the node
  compress::MessageContext choco_context(int node, std::uint32_t round) const;
  // The node's row in slot s (which exists for every node of the block).
  float* row(ClientStore::Slot s, int node) const;
  const Graph& graph_of(std::uint32_t round);
  // The sent message of each active node of this rank, and the received ones of the other
  // ranks' nodes that this rank's active nodes need, by node id.
  void exchange(const Graph& g, const std::vector<char>& is_active,
                const std::map<int, std::vector<std::uint8_t>>& mine,
                std::map<int, std::vector<std::uint8_t>>& theirs);
  // K local steps from y (in place) on node i's data; returns the mean loss.
  double local_steps(int node, std::uint32_t round, float* y, std::vector<float>& grad);

  NetworkOptions o_;
  TopologyOptions topo_;
  comm::Communicator& comm_;
  algo::Problem& problem_;
  ClientStore& store_;
  algo::ClientBlock mine_;
  int n_ = 0;
  std::int64_t d_ = 0;
  std::uint64_t seed_ = 0;
  Graph graph_;        // static graphs; the round's matching for random_matching
  std::uint32_t graph_round_ = 0;
  Mixing w_;
  double gap_ = 0;
  std::vector<int> peers_;  // ranks sharing an edge with this rank (all others: time-varying)
  ClientStore::Slot model_ = ClientStore::kNone, hat_ = ClientStore::kNone,
                    track_ = ClientStore::kNone, last_grad_ = ClientStore::kNone;
  std::unique_ptr<compress::Compressor> compressor_;
  std::vector<compress::LayerShape> shapes_;
  std::map<int, std::vector<float>> ghosts_;  // choco: x̂_j of nodes on other ranks
  std::vector<std::vector<float>> grads_, scratch_;  // per client thread
};

}  // namespace cohort::decentral
