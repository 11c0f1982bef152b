#include "algo/run_state.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "algo/algorithm.h"
#include "algo/runner.h"
#include "algo/sampling.h"
#include "attack/attack.h"
#include "model/gemm.h"
#include "core/errors.h"
#include "core/limits.h"
#include "data/loaders.h"
#include "privacy/secagg.h"

namespace cohort::algo {
namespace {

// How many ranks of comm run on this host (they share its memory). Collective.
int ranks_on_this_host(comm::Communicator& comm) {
  if (comm.size() == 1) return 1;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const auto* p = reinterpret_cast<const std::uint8_t*>(host);
  const auto all = comm.allgather_bytes(std::span<const std::uint8_t>(p, std::strlen(host)));
  const std::vector<std::uint8_t> mine(p, p + std::strlen(host));
  return static_cast<int>(std::count(all.begin(), all.end(), mine));
}

}  // namespace

double run_bytes_per_rank(const Config& cfg, std::int64_t d, int num_clients, int per_round,
                          int ranks) {
  const double vec = 4.0 * static_cast<double>(d);  // one float32 vector of d values
  const double exact = 16.0 * static_cast<double>(d);  // an exact small sum (128-bit words)
  const std::string algorithm = cfg.get_string("algorithm.name");
  // Messages of several parts (Note [Message parts]): scaffold sends 2 d values and keeps its
  // server control (d) and each client's control (d per client, below).
  const bool scaffold = algorithm == "scaffold";
  const double parts = scaffold ? 2 : 1;
  double bytes = (1 + 2 * parts) * vec;  // x, the message, the aggregate g
  if (scaffold) bytes += vec;            // the server control c
  // mime and mimelite: their server state [m, c], the anchor exchange's sum and decode buffer,
  // and mime's second gradient per client thread.
  if (algorithm == "mime" || algorithm == "mimelite")
    bytes += 2 * vec + (cfg.get_string("comm.sum") == "float" ? 1 : 2) * vec + vec +
             (algorithm == "mime" ? static_cast<double>(cfg.get_int("clients.threads")) * vec : 0);
  // The exchange's message sum (Note [Deterministic sums]: 8-byte words; float: 4) and decode
  // buffer.
  bytes += parts * ((cfg.get_string("comm.sum") == "float" ? 1 : 2) * vec + vec);
  if (cfg.get_string("downlink_compressor.name") != "none") bytes += 3 * vec;
  const std::string server = cfg.get_string("server_optimizer.name");
  if (server == "momentum" || server == "nesterov") bytes += vec;
  if (server == "adam" || server == "yogi") bytes += 2 * vec;
  const std::string attack = cfg.get_string("attack.name");
  const bool gathers_honest = attack == "minmax" || attack == "minsum";
  if (attack != "none") bytes += exact;
  if (attack == "alie" || gathers_honest) bytes += exact;
  if (gathers_honest) bytes += per_round * vec;  // every honest message on every rank
  const std::string rule = cfg.get_string("aggregator.name");
  if (rule != "mean" && rule != "majority") {  // the round's n x d messages, or a 1/P shard
    const std::string plan = cfg.get_string("comm.plan");
    const double round_bytes = per_round * vec;
    const double budget = static_cast<double>(cfg.get_int("comm.memory_budget_mib")) * 1048576.0;
    const bool whole = plan == "gather" || rule == "zeno" || gathers_honest ||
                       (plan == "auto" && round_bytes <= budget);
    bytes += whole ? round_bytes : round_bytes / ranks;
  }
  // Decentralized runs: every node of a rank's block holds its model (and choco's public copy,
  // gradient tracking's y and last gradient) from the start, plus one message per node.
  if (decentral::is_decentralized(algorithm)) {
    const double block = std::ceil(static_cast<double>(num_clients) / ranks);
    // The model and its round buffers (message, its byte copy, the next model): 4 d; choco
    // adds x_hat and the decoded q; gradient tracking y, its last gradient and (x, y) messages.
    // The off-rank neighbours' messages and choco's ghost copies come on top (one d each).
    // naive_gossip keeps no copies but decodes each message it mixes with: one d more.
    const double per_node = algorithm == "choco_gossip" || algorithm == "choco_sgd" ? 6
                            : algorithm == "gradient_tracking"                   ? 9
                            : algorithm == "naive_gossip"                        ? 5
                                                                                 : 4;
    bytes += block * per_node * vec;
  }
  // Each client thread beyond the first holds a message and its algorithm's two d-vectors
  // (Note [Client threads]).
  bytes += static_cast<double>(cfg.get_int("clients.threads") - 1) * 3 * vec;
  // Per-client state lives on the rank that owns the client: every client sampled at least once
  // keeps d floats per kind (error feedback, worker momentum, kept local momentum).
  const bool kept_local = (algorithm == "fedavg" || algorithm == "fedprox") &&
                          cfg.get_float("algorithm.local_momentum") > 0 &&
                          cfg.get_string("algorithm.local_momentum_state") == "keep";
  const std::string personal = cfg.get_string("personalization.name");
  const double kinds = (cfg.get_bool("compressor.error_feedback") ? parts : 0) +
                       (cfg.get_float("algorithm.client_momentum") > 0 ? 1 : 0) +
                       (kept_local ? 1 : 0) + (scaffold ? 1 : 0) +
                       (personal == "local" || personal == "ditto" ? 1 : 0);
  // ifca: k cluster models and their aggregates, and k - 1 more exchanges (sum and decode
  // buffers); finetune and ditto: a personal model per client thread for evaluation.
  if (personal == "ifca") {
    const auto k = static_cast<double>(cfg.get_int("personalization.k"));
    bytes += 2 * k * vec + (k - 1) * ((cfg.get_string("comm.sum") == "float" ? 1 : 2) * vec + vec);
  }
  if (personal != "none") bytes += static_cast<double>(cfg.get_int("clients.threads")) * vec;
  if (kinds > 0) {
    const double touched =
        std::min(static_cast<double>(num_clients),
                 static_cast<double>(per_round) * static_cast<double>(cfg.get_int("rounds")));
    bytes += kinds * std::floor(touched / ranks) * vec;
  }
  return bytes;
}

double ClientStateAccount::bytes_per_client() const {
  double floats = 0;
  for (const auto& s : slots) floats += static_cast<double>(s.floats);
  return 4.0 * floats;
}

std::string ClientStateAccount::describe() const {
  if (slots.empty()) return "none";
  std::string parts;
  for (const auto& s : slots)
    parts += (parts.empty() ? "" : " + ") + s.name + " " +
             human_bytes(4.0 * static_cast<double>(s.floats));
  return fmt::format("{} per client, up to {} clients on a rank: {} per rank", parts, clients,
                     human_bytes(bytes()));
}

// Note [Client state account]: the slots declared in the store.
static ClientStateAccount client_state_account(const Config& cfg, const ClientStore& store,
                                               int num_clients, int per_round, int ranks) {
  ClientStateAccount a;
  for (const auto& s : store.slots()) a.slots.push_back({s.label, s.width});
  if (a.slots.empty()) return a;
  const std::int64_t block = (static_cast<std::int64_t>(num_clients) + ranks - 1) / ranks;
  const double touched = static_cast<double>(per_round) * static_cast<double>(cfg.get_int("rounds"));
  a.clients = touched < static_cast<double>(block) ? static_cast<std::int64_t>(touched) : block;
  return a;
}

static void check_state_budget(const Config& cfg, const ClientStateAccount& a) {
  const long long budget_mib = cfg.get_int("clients.state_budget_mib");
  if (budget_mib <= 0 || a.slots.empty()) return;
  const double budget = static_cast<double>(budget_mib) * 1048576.0;
  if (a.bytes() <= budget) return;
  const auto largest = std::max_element(a.slots.begin(), a.slots.end(),
                                        [](const auto& x, const auto& y) { return x.floats < y.floats; });
  const auto fit = static_cast<long long>(std::floor(budget / a.bytes_per_client()));
  throw UsageError(fmt::format(
      "clients.state_budget_mib = {} MiB per rank is less than the per-client state's worst case: "
      "{} (the largest slot: {}); at most {} clients' state fits a rank: lower rounds x "
      "clients.per_round, use more ranks, turn the slot off, or raise clients.state_budget_mib",
      budget_mib, a.describe(), largest->name, fit));
}

ComponentOptions check_components(const Config& cfg) {
  ComponentOptions o;
  o.exchange = exchange::ExchangeOptions::from_config(cfg);
  compress::make_compressor(o.exchange.compressor);
  compress::make_compressor(compress::compressor_options(cfg, compress::kDownlinkSlot));
  o.server = ServerOptimizerOptions::from_config(cfg);
  // Each factory checks its component's options; an algorithm built for zero parameters makes
  // those checks without the model's size, and an attack needs no data.
  if (decentral::is_decentralized(cfg.get_string("algorithm.name"))) {
    decentral::NetworkOptions::from_config(cfg);
    decentral::check_topology(decentral::TopologyOptions::from_config(cfg),
                              static_cast<int>(cfg.get_int("clients.num_clients")));
  } else {
    make_algorithm(cfg, 0);
  }
  PersonalizationOptions::from_config(cfg);
  if (cfg.get_string("aggregator.name") == "qffl") {
    const std::string algorithm = cfg.get_string("algorithm.name");
    require_usage(algorithm == "fedavg" || algorithm == "fedprox",
                  "aggregator.name = qffl weighs the clients' model updates x - y_i with "
                  "L = 1/eta_l: algorithm.name must be fedavg or fedprox, not " + algorithm);
    require_usage(cfg.get_string("attack.name") == "none",
                  "aggregator.name = qffl trusts the losses the clients report: it runs "
                  "without attacks (attack.name = none), got " + cfg.get_string("attack.name"));
    require_usage(cfg.get_float("algorithm.client_momentum") == 0,
                  "aggregator.name = qffl weighs each client's update x - y_i, which worker "
                  "momentum would replace: set algorithm.client_momentum = 0");
  }
  privacy::DpOptions::from_config(cfg, static_cast<int>(cfg.get_int("clients.num_clients")));
  IterateAverage::from_config(cfg, 0);
  privacy::SecaggOptions::from_config(cfg);  // Note [Secure aggregation]
  if (cfg.get_string("clients.sampling") == "poisson") {  // Note [Poisson sampling]
    const std::string what = "clients.sampling = poisson";
    require_usage(cfg.get_string("aggregator.name") == "mean",
                  what + " gives each round a varying number of clients, which the robust rules' "
                         "preconditions cannot be checked against: use aggregator.name = mean");
    require_usage(cfg.get_string("attack.name") == "none",
                  what + " runs without attacks (attack.name = none)");
    require_usage(!decentral::is_decentralized(cfg.get_string("algorithm.name")),
                  what + " is for federated runs; decentralized runs activate nodes with "
                         "clients.per_round");
    require_usage(cfg.get_string("personalization.name") != "ifca",
                  what + " is not supported with personalization.name = ifca");
  }
  if (cfg.get_bool("eval.clients"))
    require_usage(cfg.get_float("data.client_test_fraction") > 0,
                  "eval.clients = true evaluates each client on its local test set: set "
                  "data.client_test_fraction > 0 (e.g. 0.2)");
  attack::make_attack(attack::attack_options(cfg));
  if (cfg.get_string("data.name") == "fashion_mnist") data::Normalize::from_config(cfg);
  const long long n = cfg.get_int("clients.num_clients"), m = cfg.get_int("clients.per_round");
  require_usage(m <= n, fmt::format("clients.per_round = {} exceeds clients.num_clients = {}", m, n));
  return o;
}

RunState build(const Config& cfg, comm::Communicator& comm) {
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
  const int here = ranks_on_this_host(comm);  // collective: before anything may throw
  // The models' product takes the lowest path of any rank (Note [Model GEMM paths]); a bad
  // COHORT_ISA is reported below, by the same call inside collectively().
  std::int64_t path = 0;
  try {
    path = static_cast<std::int64_t>(model::detail::gemm_isa());
  } catch (const std::exception&) {
  }
  path = comm.allreduce_scalar(path, comm::ReduceOp::kMin);
  RunState s;
  collectively(comm, [&] {
    const ComponentOptions opts = check_components(cfg);
    model::detail::gemm_isa();
    model::detail::set_gemm_isa(static_cast<Isa>(path));
    s.problem = make_problem(cfg);
    s.num_clients = s.problem->num_clients();
    s.per_round = clients_per_round(cfg, s.num_clients);
    s.dp = privacy::DpOptions::from_config(cfg, s.num_clients);
    s.mine = client_block(s.num_clients, comm.rank(), comm.size());
    // Before any d-sized buffer is allocated (Note [Input sizes]).
    const std::int64_t d = s.problem->num_params();
    const double per_rank = run_bytes_per_rank(cfg, d, s.num_clients, s.per_round, comm.size());
    const double total = per_rank * here;
    const auto bytes = total >= 9.2e18 ? std::numeric_limits<std::int64_t>::max()
                                       : static_cast<std::int64_t>(total);
    require_memory(bytes, here == 1
                              ? fmt::format("the run ({} parameters, estimated from its largest "
                                            "buffers)", d)
                              : fmt::format("the run ({} parameters, estimated from its largest "
                                            "buffers; {} ranks on this host, {} each)",
                                            d, here, human_bytes(per_rank)));
    s.clients = std::make_unique<ClientStore>(s.mine.begin, s.mine.end);
    const int threads = static_cast<int>(cfg.get_int("clients.threads"));
    const bool decentralized = decentral::is_decentralized(cfg.get_string("algorithm.name"));
    for (int w = 0; w < threads && !decentralized; ++w) {  // one per client thread, sharing slots
      s.algorithms.push_back(make_algorithm(cfg, d));
      s.algorithms.back()->declare_state(*s.clients);
    }
    s.problem->set_workers(threads);
    if (cfg.get_bool("eval.clients"))
      require_usage(s.problem->has_accuracy(),
                    "eval.clients = true records the clients' accuracies: it needs a "
                    "classification dataset, not " + s.problem->description());
    if (cfg.get_float("eval.stop_at_accuracy") > 0)
      require_usage(s.problem->has_accuracy(),
                    "eval.stop_at_accuracy stops at a test accuracy: it needs a classification "
                    "dataset, not " + s.problem->description() + "; set it to 0");
    s.workers = std::make_unique<WorkerPool>(threads);
    s.server = make_server_optimizer(opts.server);
    // A message of P parts is P d values, cut into the layers once per part
    // (Note [Message parts]).
    const std::vector<std::string> parts =
        decentralized ? std::vector<std::string>{""} : s.algorithms.front()->message_part_names();
    s.exchange = exchange::make_exchange(opts.exchange, comm,
                                         message_layers(s.problem->layers(), parts), seed,
                                         s.num_clients, *s.clients);
    if (!decentralized)
      s.algorithm_state.assign(
          static_cast<std::size_t>(s.algorithms.front()->server_state_size()), 0.0f);
    if (!decentralized && s.algorithms.front()->needs_anchor()) {  // the gradients at x: same plan and sums, no compression
      exchange::ExchangeOptions a = opts.exchange;
      a.compressor = compress::CompressorOptions{};
      a.global_scope = false;
      a.error_feedback = false;
      s.anchor =
          exchange::make_exchange(a, comm, s.problem->layers(), seed, s.num_clients, *s.clients);
    }
    s.x.resize(static_cast<std::size_t>(d));
    s.problem->init(s.x.data(), seed);
    s.average = IterateAverage::from_config(cfg, d);
    const PersonalizationOptions po = PersonalizationOptions::from_config(cfg);
    const bool local_steps = po.kind == PersonalizationKind::kLocal ||
                             po.kind == PersonalizationKind::kFinetune ||
                             po.kind == PersonalizationKind::kDitto;
    for (int w = 0; w < threads; ++w) {
      s.personal.push_back(std::make_unique<Personalization>(
          po, local_steps ? FedAvgOptions::steps_from_config(cfg) : FedAvgOptions{}, seed, s.x));
      s.personal.back()->declare_state(*s.clients);
    }
    if (po.kind == PersonalizationKind::kIfca) {  // Note [IFCA rounds]
      const auto k = static_cast<std::size_t>(po.clusters);
      s.clusters.resize(k * static_cast<std::size_t>(d));
      std::copy(s.x.begin(), s.x.end(), s.clusters.begin());
      for (std::size_t j = 1; j < k; ++j) {
        float* xj = s.clusters.data() + j * static_cast<std::size_t>(d);
        s.problem->init(xj, seed, static_cast<std::uint32_t>(j));
        // A spread of its own, so that models whose initializer is deterministic (logreg's
        // zeros) do not start as copies of model 0 (Note [IFCA rounds]).
        Rng spread(seed, static_cast<std::uint32_t>(j), kGlobalClient, Purpose::kNodeInit);
        for (std::int64_t i = 0; i < d; ++i)
          xj[i] = static_cast<float>(xj[i] + po.init_spread * spread.normal());
        s.cluster_servers.push_back(make_server_optimizer(opts.server));
        s.cluster_exchanges.push_back(exchange::make_exchange(
            opts.exchange, comm, s.problem->layers(), seed, s.num_clients, *s.clients));
      }
    }
    s.downlink = std::make_unique<exchange::Downlink>(cfg, s.problem->layers(), seed, s.x);
    if (decentralized) {  // every node starts from x; x becomes their average
      s.network = std::make_unique<decentral::Network>(cfg, comm, *s.problem, *s.clients, s.mine,
                                                       s.x);
      s.network->average(s.x.data());
    }
    s.behaviour = std::make_unique<ClientBehaviour>(cfg, *s.problem, seed, *s.clients);
    s.behaviour->check_rounds(cfg.get_int("rounds"), s.per_round);
    s.client_state =
        client_state_account(cfg, *s.clients, s.num_clients, s.per_round, comm.size());
    if (decentralized)  // every node of the block holds its model from the start
      s.client_state.clients = s.mine.end - s.mine.begin;
    check_state_budget(cfg, s.client_state);
  });
  return s;
}

namespace {

// The anchor exchange's state is saved under "anchor/" so that its keys do not meet the main
// exchange's.
const std::string kAnchor = "anchor/";

void put_prefixed(StateBundle& into, StateBundle&& from, const std::string& prefix) {
  for (auto& [k, v] : from.f32) into.f32[prefix + k] = std::move(v);
  for (auto& [k, v] : from.f64) into.f64[prefix + k] = std::move(v);
  for (auto& [k, v] : from.i64) into.i64[prefix + k] = std::move(v);
  for (auto& [k, v] : from.clients) into.clients[prefix + k] = std::move(v);
}

StateBundle take_prefixed(const StateBundle& b, const std::string& prefix) {
  StateBundle out;
  auto take = [&](const auto& from, auto& to) {
    for (const auto& [k, v] : from)
      if (k.rfind(prefix, 0) == 0) to[k.substr(prefix.size())] = v;
  };
  take(b.f32, out.f32);
  take(b.f64, out.f64);
  take(b.i64, out.i64);
  take(b.clients, out.clients);
  return out;
}

// Cluster j's exchange and server optimizer (ifca) are saved under "cluster<j>/".
std::string cluster_prefix(std::size_t j) { return fmt::format("cluster{}/", j); }

}  // namespace

StateBundle RunState::save_local() const {
  StateBundle b;
  exchange->save(b);
  for (std::size_t j = 0; j < cluster_exchanges.size(); ++j) {
    StateBundle e;
    cluster_exchanges[j]->save(e);
    put_prefixed(b, std::move(e), cluster_prefix(j + 1));
  }
  if (anchor) {
    StateBundle a;
    anchor->save(a);
    put_prefixed(b, std::move(a), kAnchor);
  }
  clients->save(b);
  return b;
}

StateBundle RunState::save_shared() const {
  StateBundle b;
  b.f32["run/x"] = x;
  server->save(b);
  downlink->save(b);
  if (!algorithm_state.empty()) b.f32["run/algorithm_state"] = algorithm_state;
  if (!clusters.empty()) b.f32["run/clusters"] = clusters;
  average.save(b);
  if (behaviour) behaviour->save(b);
  for (std::size_t j = 0; j < cluster_servers.size(); ++j) {
    StateBundle e;
    cluster_servers[j]->save(e);
    put_prefixed(b, std::move(e), cluster_prefix(j + 1));
  }
  return b;
}

void RunState::load(const StateBundle& b, long long done, const std::string& source) {
  const auto& saved = b.get_f32("run/x");
  require_usage(saved.size() == x.size(),
                fmt::format("checkpoint {} holds a model of {} parameters; this run has {}",
                            source, saved.size(), x.size()));
  round = done;
  x = saved;
  average.load(b, source);
  if (!algorithm_state.empty()) {
    const auto& state = b.get_f32("run/algorithm_state");
    require_usage(state.size() == algorithm_state.size(),
                  fmt::format("checkpoint {} holds {} values of algorithm server state; this run "
                              "has {}",
                              source, state.size(), algorithm_state.size()));
    algorithm_state = state;
  }
  if (!clusters.empty()) {
    const auto& saved_clusters = b.get_f32("run/clusters");
    require_usage(saved_clusters.size() == clusters.size(),
                  fmt::format("checkpoint {} holds {} values of cluster models; this run has {} "
                              "(personalization.k differs)",
                              source, saved_clusters.size(), clusters.size()));
    clusters = saved_clusters;
  }
  for (std::size_t j = 0; j < cluster_servers.size(); ++j) {
    cluster_servers[j]->load(take_prefixed(b, cluster_prefix(j + 1)));
    cluster_exchanges[j]->load(take_prefixed(b, cluster_prefix(j + 1)));
  }
  server->load(b);
  downlink->load(b);
  exchange->load(b);
  if (anchor) anchor->load(take_prefixed(b, kAnchor));
  clients->load(b);
  if (behaviour) behaviour->load(b);
  if (network) network->restore_ghosts();  // collective: every rank loads
}

}  // namespace cohort::algo
