#include "decentral/network.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "algo/interrupt.h"
#include "core/errors.h"
#include "core/exact_sum.h"
#include "core/rng.h"

namespace cohort::decentral {
namespace {

Option init_spread_option() {
  return opt_float("init_spread", 0.0,
                   "standard deviation sigma of the nodes' initial spread: x_i = x0 + sigma xi_i, "
                   "xi_i ~ N(0, I) from the node's own stream; 0: every node starts at x0",
                   0);
}
Option gamma_option() {
  return opt_float("gamma", 1.0, "consensus step size gamma of the gossip on public copies", 0,
                   INFINITY, true);
}

// Appends raw bytes.
void put(std::vector<std::uint8_t>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

}  // namespace

bool is_decentralized(const std::string& a) {
  return a == "gossip" || a == "dsgd" || a == "choco_gossip" || a == "choco_sgd" ||
         a == "naive_gossip" || a == "gradient_tracking";
}

std::vector<Option> gossip_options() { return {init_spread_option()}; }
std::vector<Option> dsgd_options() {
  auto o = algo::local_step_options(false);
  o.push_back(opt_enum("order", "step_then_gossip", {"step_then_gossip", "gossip_then_step"},
                       "step_then_gossip: x_i <- sum_j w_ij (x_j after K local steps); "
                       "gossip_then_step (D-PSGD): x_i <- sum_j w_ij x_j - (the local update of "
                       "x_i), both at the old iterates"));
  o.push_back(init_spread_option());
  return o;
}
std::vector<Option> choco_gossip_options() {
  return {gamma_option(), init_spread_option()};
}
std::vector<Option> choco_sgd_options() {
  auto o = algo::local_step_options(false);
  o.push_back(gamma_option());
  o.push_back(init_spread_option());
  return o;
}
std::vector<Option> naive_gossip_options() { return {gamma_option(), init_spread_option()}; }
std::vector<Option> gradient_tracking_options() {
  // One gradient a round (DIGing): no local steps or epochs.
  std::vector<Option> o;
  for (const Option& opt : algo::local_step_options(false))
    if (opt.key == "batch_size" || opt.key == "local_lr") o.push_back(opt);
  o.push_back(init_spread_option());
  return o;
}

NetworkOptions NetworkOptions::from_config(const Config& cfg) {
  NetworkOptions o;
  o.name = cfg.get_string("algorithm.name");
  o.method = o.name == "gossip"         ? Method::kGossip
             : o.name == "dsgd"         ? Method::kDsgd
             : o.name == "choco_gossip" ? Method::kChocoGossip
             : o.name == "choco_sgd"    ? Method::kChocoSgd
             : o.name == "naive_gossip" ? Method::kNaiveGossip
                                        : Method::kGradientTracking;
  o.init_spread = cfg.get_float("algorithm.init_spread");
  if (o.method == Method::kGradientTracking) {  // one gradient a round, no local steps
    o.steps.local_steps = 1;
    o.steps.batch_size = cfg.get_int("algorithm.batch_size");
    o.steps.local_lr = cfg.get_float("algorithm.local_lr");
    o.steps.schedule = algo::LrSchedule::from_config(cfg, "algorithm.lr_schedule",
                                                     o.steps.local_lr, "algorithm.local_lr");
    o.steps.gradient = algo::GradientOptions::from_config(cfg);
  } else if (o.trains()) {
    o.steps = algo::FedAvgOptions::steps_from_config(cfg);
  }
  if (o.method == Method::kDsgd)
    o.gossip_then_step = cfg.get_string("algorithm.order") == "gossip_then_step";
  if (o.compresses()) o.gamma = cfg.get_float("algorithm.gamma");
  const std::string what = "algorithm.name = " + o.name;
  auto refuse = [&](bool bad, const std::string& msg) { require_usage(!bad, what + msg); };
  refuse(cfg.get_string("aggregator.name") != "mean" || cfg.get_bool("aggregator.weighted"),
         " has no server to aggregate: leave aggregator at its default (mean, unweighted)");
  refuse(cfg.get_string("server_optimizer.name") != "sgd" ||
             cfg.get_float("server_optimizer.lr") != 1.0 ||
             cfg.get_string("server_optimizer.lr_schedule.name") != "constant",
         " has no server: leave server_optimizer at its default (sgd, lr 1, constant)");
  refuse(cfg.get_string("downlink_compressor.name") != "none",
         " has no server broadcast: downlink_compressor.name must be none");
  refuse(cfg.get_string("attack.name") != "none",
         " runs without attacks (attack.name = none); got attack.name = " +
             cfg.get_string("attack.name"));
  refuse(cfg.get_string("personalization.name") != "none",
         ": every node already keeps its own model; personalization.name must be none");
  refuse(cfg.get_string("averaging.name") != "none",
         ": its evaluated model is the nodes' average already; averaging.name must be none");
  refuse(cfg.get_bool("eval.clients"),
         " evaluates nodes with eval.nodes_every, not eval.clients: set eval.clients = false");
  refuse(cfg.get_float("algorithm.client_momentum") != 0,
         " sends models, not updates: algorithm.client_momentum must be 0");
  refuse(cfg.get_bool("compressor.error_feedback"),
         ": compressor.error_feedback is not defined for gossip (choco keeps its own public "
         "copies instead)");
  if (!o.compresses())
    refuse(cfg.get_string("compressor.name") != "none",
           " exchanges exact models: compressor.name must be none (choco_gossip, choco_sgd and "
           "naive_gossip compress), got " + cfg.get_string("compressor.name"));
  else
    refuse(cfg.get_string("compressor.name") == "powersgd",
           ": powersgd keeps per-message state that gossip messages do not carry; use topk, "
           "randk, sign or qsgd");
  if (o.choco())
    refuse(cfg.get_string("topology.name") == "random_matching",
           " keeps public copies of its neighbours, which a graph that changes every round "
           "does not have: use a static topology");
  return o;
}

Network::Network(const Config& cfg, comm::Communicator& comm, algo::Problem& problem,
                 ClientStore& store, algo::ClientBlock mine, const std::vector<float>& x0)
    : o_(NetworkOptions::from_config(cfg)), topo_(TopologyOptions::from_config(cfg)), comm_(comm),
      problem_(problem), store_(store), mine_(mine), n_(problem.num_clients()),
      d_(static_cast<std::int64_t>(x0.size())),
      seed_(static_cast<std::uint64_t>(cfg.get_int("seed"))) {
  graph_ = build_graph(topo_, n_, seed_, 0);
  if (!topo_.time_varying()) {
    w_ = mixing(graph_, topo_.weights);
    check_doubly_stochastic(w_);
    gap_ = decentral::spectral_gap(w_);
  } else {
    gap_ = NAN;
  }
  // The ranks this rank exchanges with: those holding a neighbour of one of its nodes (every
  // other rank when the graph changes each round). Symmetric because the graph is undirected.
  const int ranks = comm.size(), me = comm.rank();
  std::vector<char> peer(static_cast<std::size_t>(ranks), 0);
  if (topo_.time_varying()) {
    std::fill(peer.begin(), peer.end(), 1);
  } else {
    for (int i = mine.begin; i < mine.end; ++i)
      for (int j : graph_.adj[static_cast<std::size_t>(i)]) peer[static_cast<std::size_t>(owner(j))] = 1;
  }
  for (int r = 0; r < ranks; ++r)
    if (r != me && peer[static_cast<std::size_t>(r)]) peers_.push_back(r);

  model_ = store.declare("node_model", "node model", d_);
  if (o_.choco()) hat_ = store.declare("node_public", "public copy (choco)", d_);
  if (o_.compresses()) {
    compressor_ = compress::make_compressor(compress::compressor_options(cfg, compress::kUplinkSlot));
    shapes_ = compress::message_layers(problem.layers(), cfg.get_string("compressor.scope") == "global");
  }
  if (o_.method == Method::kGradientTracking) {
    track_ = store.declare("node_tracking", "tracking variable y", d_);
    last_grad_ = store.declare("node_gradient", "last gradient", d_);
  }
  // Every node of the block starts at x0 (plus its spread); choco's x̂ = 0.
  for (int i = mine.begin; i < mine.end; ++i) {
    float* x = store.row(model_, i).data();
    std::copy(x0.begin(), x0.end(), x);
    if (o_.init_spread > 0) {
      Rng rng(seed_, 0, static_cast<std::uint32_t>(i), Purpose::kNodeInit);
      for (std::int64_t k = 0; k < d_; ++k)
        x[k] = static_cast<float>(x[k] + o_.init_spread * rng.normal());
    }
    if (hat_ != ClientStore::kNone) store.row(hat_, i);
  }
  // Ghost public copies of the other ranks' neighbours (zero, like every x̂ at the start).
  if (o_.choco())
    for (int i = mine.begin; i < mine.end; ++i)
      for (int j : graph_.adj[static_cast<std::size_t>(i)])
        if (!mine.owns(j)) ghosts_.try_emplace(j, static_cast<std::size_t>(d_), 0.0f);
}

int Network::owner(int node) const {
  const int ranks = comm_.size();
  int lo = 0, hi = ranks - 1;
  while (lo < hi) {  // the last rank whose block starts at or before the node
    const int mid = (lo + hi + 1) / 2;
    if (algo::client_block(n_, mid, ranks).begin <= node)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// The compression streams of choco and naive_gossip: the run's scheme (Note [Compression
// streams]) under a key derived from (seed, node), so that what a compressor draws from the
// "shared" stream (rand-k's indices) is the node's own: nodes compress independently, as nothing
// of theirs is ever summed.
compress::MessageContext Network::choco_context(int node, std::uint32_t round) const {
  const std::uint64_t key = seed_ ^ (0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(node) + 1));
  return compress::MessageContext{key, round, static_cast<std::uint32_t>(node),
                                  Purpose::kCompression};
}

float* Network::row(ClientStore::Slot s, int node) const {
  return store_.row(s, node).data();
}

const float* Network::node_model(int node) const { return row(model_, node); }

const Graph& Network::graph_of(std::uint32_t round) {
  if (topo_.time_varying() && graph_round_ != round) {
    graph_ = random_matching(n_, seed_, round);
    graph_round_ = round;
  }
  return graph_;
}

std::string Network::describe() const {
  return fmt::format("topology {} ({} nodes, {} edges{}), {} weights, spectral gap {}; {} "
                     "neighbouring rank(s)",
                     topo_.name, n_, graph_.edges(), topo_.time_varying() ? " this round" : "",
                     topo_.time_varying()                ? "matching (1/2 per pair)"
                     : topo_.weights == Weights::kUniform ? "uniform"
                                                          : "metropolis",
                     std::isnan(gap_) ? std::string(topo_.time_varying() ? "n/a (time-varying)"
                                                                         : "not computed")
                                      : fmt::format("{:.6g}", gap_),
                     peers_.size());
}

double Network::local_steps(int node, std::uint32_t round, float* y, std::vector<float>& grad) {
  grad.resize(static_cast<std::size_t>(d_));
  auto [batches, noise, steps, lr] = algo::LocalRound(o_.steps, problem_, seed_, node, round);
  double loss = 0;
  for (std::int64_t k = 0; k < steps; ++k) {
    if (algo::abandon_local_work()) break;
    loss += problem_.loss_grad(node, y, batches.next(), grad.data(), noise);
    o_.steps.gradient.apply(grad.data(), y, d_);
    for (std::int64_t i = 0; i < d_; ++i) y[i] -= lr * grad[i];
  }
  return steps > 0 ? loss / static_cast<double>(steps) : 0.0;
}

void Network::exchange(const Graph& g, const std::vector<char>& is_active,
                       const std::map<int, std::vector<std::uint8_t>>& mine,
                       std::map<int, std::vector<std::uint8_t>>& theirs) {
  theirs.clear();
  // Every rank takes part, also one without peers (or without nodes: more ranks than nodes):
  // the graph communicator is created collectively over all ranks.
  std::vector<std::vector<std::uint8_t>> send(peers_.size());
  for (const auto& [node, bytes] : mine) {
    // Each peer rank holding an active neighbour gets the message once; under choco every rank
    // holding any neighbour (its ghost copy of x̂_node changes whether or not its nodes are active).
    std::vector<char> to(peers_.size(), 0);
    for (int j : g.adj[static_cast<std::size_t>(node)]) {
      if ((!o_.choco() && !is_active[static_cast<std::size_t>(j)]) || mine_.owns(j)) continue;
      const auto it = std::lower_bound(peers_.begin(), peers_.end(), owner(j));
      to[static_cast<std::size_t>(it - peers_.begin())] = 1;
    }
    for (std::size_t p = 0; p < peers_.size(); ++p) {
      if (!to[p]) continue;
      const auto id = static_cast<std::uint32_t>(node);
      const auto size = static_cast<std::uint64_t>(bytes.size());
      put(send[p], &id, sizeof id);
      put(send[p], &size, sizeof size);
      put(send[p], bytes.data(), bytes.size());
    }
  }
  const auto got = comm_.neighbor_exchange(peers_, send);
  for (const auto& buf : got) {
    std::size_t at = 0;
    while (at < buf.size()) {
      std::uint32_t id = 0;
      std::uint64_t size = 0;
      std::memcpy(&id, buf.data() + at, sizeof id);
      std::memcpy(&size, buf.data() + at + sizeof id, sizeof size);
      at += sizeof id + sizeof size;
      theirs[static_cast<int>(id)].assign(buf.begin() + static_cast<std::ptrdiff_t>(at),
                                          buf.begin() + static_cast<std::ptrdiff_t>(at + size));
      at += size;
    }
  }
}

Network::RoundResult Network::step(std::uint32_t round, const std::vector<int>& active,
                                   WorkerPool& workers) {
  const Graph& g = graph_of(round);
  Mixing matching_w;
  if (topo_.time_varying()) matching_w = mixing(g, Weights::kMetropolis);
  const Mixing& w = topo_.time_varying() ? matching_w : w_;
  std::vector<char> is_active(static_cast<std::size_t>(n_), 0);
  for (int c : active) is_active[static_cast<std::size_t>(c)] = 1;
  std::vector<int> local;  // this rank's active nodes
  for (int c : active)
    if (mine_.owns(c)) local.push_back(c);
  const auto m = static_cast<int>(local.size());
  const auto threads = static_cast<std::size_t>(workers.size());
  grads_.resize(threads);
  scratch_.resize(threads);
  const std::size_t d = static_cast<std::size_t>(d_);
  auto has_active_neighbour = [&](int i) {
    for (int j : g.adj[static_cast<std::size_t>(i)])
      if (is_active[static_cast<std::size_t>(j)]) return true;
    return false;
  };

  // Phase 1: each active node's message (and, for the trainers, its local work).
  RoundResult res;
  auto t0 = std::chrono::steady_clock::now();
  auto lap = [&t0] {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - t0).count();
    t0 = now;
    return s;
  };
  std::vector<double> loss(static_cast<std::size_t>(m), 0.0);
  std::vector<std::vector<float>> z(static_cast<std::size_t>(m));  // raw messages / updates
  std::vector<compress::Encoded> q(static_cast<std::size_t>(m));
  workers.run(m, [&](int task, int worker) {
    const int i = local[static_cast<std::size_t>(task)];
    auto& grad = grads_[static_cast<std::size_t>(worker)];
    float* x = row(model_, i);
    auto& zi = z[static_cast<std::size_t>(task)];
    switch (o_.method) {
      case Method::kGossip:
        zi.assign(x, x + d);
        break;
      case Method::kNaiveGossip:
        zi.assign(x, x + d);
        q[static_cast<std::size_t>(task)] =
            compress::encode(*compressor_, zi, shapes_, choco_context(i, round), {});
        break;
      case Method::kDsgd:  // step_then_gossip sends z_i; gossip_then_step sends x_i
        zi.assign(x, x + d);
        if (!o_.gossip_then_step)
          loss[static_cast<std::size_t>(task)] = local_steps(i, round, zi.data(), grad);
        break;
      case Method::kChocoSgd:
        loss[static_cast<std::size_t>(task)] = local_steps(i, round, x, grad);
        [[fallthrough]];
      case Method::kChocoGossip: {
        const float* hat = row(hat_, i);
        zi.resize(d);
        for (std::size_t k = 0; k < d; ++k) zi[k] = x[k] - hat[k];
        q[static_cast<std::size_t>(task)] =
            compress::encode(*compressor_, zi, shapes_, choco_context(i, round), {});
        break;
      }
      case Method::kGradientTracking: {
        const bool first = store_.find(track_, i).empty();
        float* y = row(track_, i);
        float* last = row(last_grad_, i);
        if (first) {
          // y_i = g_i(x_i) before the node's first round, on a minibatch of its own stream
          // (the control-gradient purposes), apart from the round's step below.
          algo::BatchStream batches(problem_.client_samples(i), o_.steps.batch_size,
                                    Rng(seed_, round, static_cast<std::uint32_t>(i),
                                        Purpose::kControlBatches));
          Rng noise(seed_, round, static_cast<std::uint32_t>(i), Purpose::kControlNoise);
          grad.resize(d);
          problem_.loss_grad(i, x, batches.next(), grad.data(), noise);
          o_.steps.gradient.apply(grad.data(), x, d_);
          std::copy(grad.begin(), grad.end(), y);
          std::copy(grad.begin(), grad.end(), last);
        }
        zi.resize(2 * d);
        std::copy(x, x + d, zi.begin());
        std::copy(y, y + d, zi.begin() + static_cast<std::ptrdiff_t>(d));
        break;
      }
    }
  });

  res.seconds_local = lap();

  // Phase 2: the messages to the other ranks; bits.
  res.node_bits.assign(active.size(), 0);
  std::map<int, std::vector<std::uint8_t>> mine, theirs;
  auto bits_of = [&](int i) -> std::int64_t& {
    return res.node_bits[static_cast<std::size_t>(
        std::lower_bound(active.begin(), active.end(), i) - active.begin())];
  };
  for (int t = 0; t < m; ++t) {
    const int i = local[static_cast<std::size_t>(t)];
    // A choco node's q also updates the ghosts of ranks whose nodes are inactive: it is sent
    // (and counted) whenever the node has a neighbour at all.
    const bool sends = o_.choco() ? !g.adj[static_cast<std::size_t>(i)].empty()
                                  : has_active_neighbour(i);
    auto& bytes = mine[i];
    if (o_.compresses()) {
      const auto& e = q[static_cast<std::size_t>(t)];
      put(bytes, &e.bits, sizeof e.bits);
      put(bytes, e.bytes.data(), e.bytes.size());
      if (sends) bits_of(i) = static_cast<std::int64_t>(e.bits);
    } else {
      const auto& zi = z[static_cast<std::size_t>(t)];
      put(bytes, zi.data(), zi.size() * sizeof(float));
      if (sends) bits_of(i) = static_cast<std::int64_t>(32 * zi.size());
    }
    res.bits += bits_of(i);
    if (sends) ++res.senders;
  }
  exchange(g, is_active, mine, theirs);
  auto message = [&](int j) -> const std::vector<std::uint8_t>& {
    auto it = mine.find(j);
    if (it != mine.end()) return it->second;
    it = theirs.find(j);
    if (it == theirs.end()) throw std::logic_error(fmt::format("gossip: no message of node {}", j));
    return it->second;
  };

  res.seconds_exchange = lap();
  // The decoded message of node j (an encoding of the run's compressor).
  auto decode = [&](int j, std::vector<float>& out) {
    const auto& bytes = message(j);
    std::uint64_t bits = 0;
    std::memcpy(&bits, bytes.data(), sizeof bits);
    compress::Encoded e;
    e.bits = bits;
    e.bytes.assign(bytes.begin() + sizeof bits, bytes.end());
    out.resize(d);
    compress::decode(*compressor_, e, shapes_, choco_context(j, round), out);
  };

  // Choco: every copy of an active node's x̂ takes its q first (own nodes and ghosts).
  if (o_.choco()) {
    auto apply = [&](int j, float* hat) {
      std::vector<float> dq;
      decode(j, dq);
      for (std::size_t k = 0; k < d; ++k) hat[k] += dq[k];
    };
    workers.run(m, [&](int task, int) {
      const int i = local[static_cast<std::size_t>(task)];
      apply(i, row(hat_, i));
    });
    for (auto& [j, hat] : ghosts_)
      if (is_active[static_cast<std::size_t>(j)]) apply(j, hat.data());
  }

  // naive_gossip: Q(x_j) of every active node this rank's nodes mix with, decoded once.
  std::vector<int> decoded_ids;
  std::vector<std::vector<float>> decoded;
  if (o_.method == Method::kNaiveGossip) {
    decoded_ids = local;
    for (const auto& [j, bytes] : theirs) decoded_ids.push_back(j);
    std::sort(decoded_ids.begin(), decoded_ids.end());
    decoded.resize(decoded_ids.size());
    workers.run(static_cast<int>(decoded_ids.size()), [&](int task, int) {
      decode(decoded_ids[static_cast<std::size_t>(task)], decoded[static_cast<std::size_t>(task)]);
    });
  }
  auto quantized = [&](int j) -> const float* {
    const auto it = std::lower_bound(decoded_ids.begin(), decoded_ids.end(), j);
    return decoded[static_cast<std::size_t>(it - decoded_ids.begin())].data();
  };

  // Phase 3: mixing with W restricted to the active nodes, each node on its own.
  std::vector<std::vector<float>> next(static_cast<std::size_t>(m));
  std::vector<std::vector<float>> next_y(o_.method == Method::kGradientTracking ? m : 0);
  workers.run(m, [&](int task, int worker) {
    const int i = local[static_cast<std::size_t>(task)];
    const MixingRow& wr = w[static_cast<std::size_t>(i)];
    double self = 1.0;
    for (const auto& [j, wij] : wr)
      if (j != i && is_active[static_cast<std::size_t>(j)]) self -= wij;
    auto& out = next[static_cast<std::size_t>(task)];
    out.assign(d, 0.0f);
    std::vector<double> acc(d, 0.0);
    if (o_.choco()) {
      const float* hi = row(hat_, i);
      for (const auto& [j, wij] : wr) {
        if (j == i || !is_active[static_cast<std::size_t>(j)]) continue;
        const float* hj = mine_.owns(j) ? row(hat_, j) : ghosts_.at(j).data();
        for (std::size_t k = 0; k < d; ++k)
          acc[k] += wij * (static_cast<double>(hj[k]) - static_cast<double>(hi[k]));
      }
      const float* x = row(model_, i);
      for (std::size_t k = 0; k < d; ++k)
        out[k] = static_cast<float>(static_cast<double>(x[k]) + o_.gamma * acc[k]);
      return;
    }
    if (o_.method == Method::kNaiveGossip) {  // x_i + γ sum_j w_ij (Q(x_j) - Q(x_i))
      const float* qi = quantized(i);
      for (const auto& [j, wij] : wr) {
        if (j == i || !is_active[static_cast<std::size_t>(j)]) continue;
        const float* qj = quantized(j);
        for (std::size_t k = 0; k < d; ++k)
          acc[k] += wij * (static_cast<double>(qj[k]) - static_cast<double>(qi[k]));
      }
      const float* x = row(model_, i);
      for (std::size_t k = 0; k < d; ++k)
        out[k] = static_cast<float>(static_cast<double>(x[k]) + o_.gamma * acc[k]);
      return;
    }
    // Raw messages: sum_j w_ij m_j in ascending j, the node's own weight `self`.
    const std::size_t width = o_.method == Method::kGradientTracking ? 2 * d : d;
    std::vector<double> acc2(o_.method == Method::kGradientTracking ? d : 0, 0.0);
    for (const auto& [j, wij] : wr) {
      if (j != i && !is_active[static_cast<std::size_t>(j)]) continue;
      const double wt = j == i ? self : wij;
      const float* mj = j == i ? z[static_cast<std::size_t>(task)].data()
                               : reinterpret_cast<const float*>(message(j).data());
      for (std::size_t k = 0; k < d; ++k) acc[k] += wt * mj[k];
      if (width == 2 * d)
        for (std::size_t k = 0; k < d; ++k) acc2[k] += wt * mj[d + k];
    }
    if (o_.method == Method::kDsgd && o_.gossip_then_step) {
      // x_i+ = sum_j w_ij x_j - (x_i - z_i): z_i, the local steps from x_i, computed here.
      auto& grad = grads_[static_cast<std::size_t>(worker)];
      auto& zi = scratch_[static_cast<std::size_t>(worker)];
      const float* x = row(model_, i);
      zi.assign(x, x + d);
      loss[static_cast<std::size_t>(task)] = local_steps(i, round, zi.data(), grad);
      for (std::size_t k = 0; k < d; ++k)
        out[k] = static_cast<float>(acc[k] - (static_cast<double>(x[k]) - zi[k]));
      return;
    }
    if (o_.method == Method::kGradientTracking) {
      // x_i+ = sum_j w_ij x_j - eta y_i; y_i+ = sum_j w_ij y_j + g(x_i+) - g(x_i).
      auto& grad = grads_[static_cast<std::size_t>(worker)];
      grad.resize(d);
      const float* y = row(track_, i);
      float* last = row(last_grad_, i);
      auto [batches, noise, steps, lr] = algo::LocalRound(o_.steps, problem_, seed_, i, round);
      (void)steps;
      for (std::size_t k = 0; k < d; ++k)
        out[k] = static_cast<float>(acc[k] - static_cast<double>(lr) * y[k]);
      loss[static_cast<std::size_t>(task)] =
          problem_.loss_grad(i, out.data(), batches.next(), grad.data(), noise);
      o_.steps.gradient.apply(grad.data(), out.data(), d_);
      auto& ny = next_y[static_cast<std::size_t>(task)];
      ny.resize(d);
      for (std::size_t k = 0; k < d; ++k) {
        ny[k] = static_cast<float>(acc2[k] + static_cast<double>(grad[k]) - last[k]);
        last[k] = grad[k];
      }
      return;
    }
    for (std::size_t k = 0; k < d; ++k) out[k] = static_cast<float>(acc[k]);
  });
  // Every node's inputs were read; now the new models replace the old.
  for (int t = 0; t < m; ++t) {
    const int i = local[static_cast<std::size_t>(t)];
    std::copy(next[static_cast<std::size_t>(t)].begin(), next[static_cast<std::size_t>(t)].end(),
              row(model_, i));
    if (o_.method == Method::kGradientTracking)
      std::copy(next_y[static_cast<std::size_t>(t)].begin(),
                next_y[static_cast<std::size_t>(t)].end(), row(track_, i));
    const float* x = row(model_, i);
    if (!std::all_of(x, x + d, [](float v) { return std::isfinite(v); })) res.valid = false;
  }
  if (o_.trains()) res.losses = std::move(loss);
  res.seconds_mix = lap();
  return res;
}

double Network::average(float* x_bar) {
  const std::size_t d = static_cast<std::size_t>(d_);
  ExactAccumulator sum(d_);
  for (int i = mine_.begin; i < mine_.end; ++i) sum.add(row(model_, i));
  bool ok = sum.valid();
  comm_.allreduce(comm::View{sum.data(), d_, comm::DType::kExact128}, comm::ReduceOp::kSum);
  ok = comm_.allreduce_scalar(static_cast<std::int64_t>(ok), comm::ReduceOp::kMin) == 1;
  if (!ok) {
    std::fill(x_bar, x_bar + d, NAN);
    return INFINITY;
  }
  sum.read(x_bar, static_cast<double>(n_));
  ExactAccumulator dist(1);
  for (int i = mine_.begin; i < mine_.end; ++i) {
    const float* x = row(model_, i);
    double s = 0;
    for (std::size_t k = 0; k < d; ++k) {
      const double e = static_cast<double>(x[k]) - x_bar[k];
      s += e * e;
    }
    dist.add_at(0, s);
  }
  comm_.allreduce(comm::View{dist.data(), 1, comm::DType::kExact128}, comm::ReduceOp::kSum);
  return dist.valid() ? dist.value(0) / n_ : INFINITY;
}

void Network::restore_ghosts() {
  if (!o_.choco()) return;
  std::vector<char> all(static_cast<std::size_t>(n_), 1);
  std::map<int, std::vector<std::uint8_t>> mine, theirs;
  for (int i = mine_.begin; i < mine_.end; ++i) {
    auto& b = mine[i];
    put(b, row(hat_, i), static_cast<std::size_t>(d_) * sizeof(float));
  }
  exchange(graph_, all, mine, theirs);
  for (auto& [j, hat] : ghosts_) {
    const auto& b = theirs.at(j);
    std::memcpy(hat.data(), b.data(), hat.size() * sizeof(float));
  }
}

}  // namespace cohort::decentral
