// Everything a run needs to continue (Note [Run state]), and the one function that builds it from
// a config for `cohort run`, `cohort validate` and `cohort sweep`.
//
// Note [Run state]
// A run is a loop of rounds over one RunState: the number of completed rounds t, the global
// model x, the server optimizer (its moments), the client algorithm's server state (scaffold's
// control c, Note [Message parts] in algo/algorithm.h), the downlink (its x_hat), the exchange
// (the sums' scales, PowerSGD's warm Q, the robust rule's state such as cclip's previous output)
// and the ClientStore with every per-client slot of the clients this rank owns (Note [Client
// store]). The problem, the client algorithm and the client behaviour are built from the config
// and carry nothing between rounds outside the store and algorithm_state. A checkpoint is exactly
// save_local() of every rank plus save_shared() of rank 0, and load() puts it back (Note
// [Checkpoints] in metrics/checkpoint.h); a round (algo/round.h) reads and updates nothing else, so
// a resumed run continues bit for bit.
//
// Note [One setup for run and validate]
// `validate` promises that `run` will not reject the config before training, and a sweep checks
// its runs' configs before it starts them, so all three build through the same code:
// check_components() parses and checks every component's options without data (what `sweep`
// calls for each run of a sweep), and build() calls it, then reads and partitions the data, checks
// the sizes and the memory estimate against the machine, and builds every component, including
// the per-round attack checks that need the data's size and the client-state budget. A check
// added to a component's options or constructor is therefore made by all three; only opening
// the results file is left to `run`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "algo/averaging.h"
#include "algo/clients.h"
#include "algo/personalization.h"
#include "algo/problem.h"
#include "algo/sampling.h"
#include "algo/server_optimizer.h"
#include "comm/communicator.h"
#include "core/client_store.h"
#include "core/config.h"
#include "core/state.h"
#include "core/worker_pool.h"
#include "decentral/network.h"
#include "privacy/dp.h"
#include "exchange/downlink.h"
#include "exchange/exchange.h"

namespace cohort::algo {

// Note [Client state account]: per-client state lives on the rank that owns the client and is
// allocated at the client's first participation, so its worst case on one rank is the declared
// slots' widths times the clients of the largest rank block that can take part during the run:
// min(ceil(N / ranks), rounds x per_round). It is printed at start-up and checked against
// clients.state_budget_mib (per rank; 0: only the machine's memory check) before training.
struct ClientStateAccount {
  struct Slot {
    std::string name;
    std::int64_t floats = 0;  // per client
  };
  std::vector<Slot> slots;
  std::int64_t clients = 0;  // worst case of clients with state on one rank
  double bytes_per_client() const;
  double bytes() const { return bytes_per_client() * static_cast<double>(clients); }
  // "error feedback 397.5 KiB + worker momentum 397.5 KiB per client, up to 1,000 clients on a
  // rank: 776.4 MiB per rank", or "none" without per-client state.
  std::string describe() const;
};

// The options of every component, parsed and checked without the data.
struct ComponentOptions {
  exchange::ExchangeOptions exchange;
  ServerOptimizerOptions server;
};
// Throws UsageError for options no run could start with (Note [One setup for run and validate]).
ComponentOptions check_components(const Config& cfg);

struct RunState {
  // Carried from round to round, saved by a checkpoint.
  long long round = 0;  // completed rounds
  std::vector<float> x;  // the global model
  std::unique_ptr<ServerOptimizer> server;
  std::unique_ptr<exchange::Downlink> downlink;
  std::unique_ptr<exchange::Exchange> exchange;
  // The first exchange of an algorithm with anchor gradients (mime; Note [Anchor gradients] in
  // algo/algorithm.h): plain mean, uncompressed; null otherwise.
  std::unique_ptr<exchange::Exchange> anchor;
  std::unique_ptr<ClientStore> clients;  // this rank's block; a stable address the parts share
  // The client algorithm's server state (Note [Message parts] in algo/algorithm.h), e.g.
  // scaffold's control c; empty for most algorithms.
  std::vector<float> algorithm_state;
  // ifca (Note [IFCA rounds] in algo/round.cpp): the k cluster models, k d floats (cluster j at
  // j d), and the server optimizers and exchanges of clusters 1..k-1 (cluster 0 uses `server`
  // and `exchange`); empty without ifca. x is then a copy of the cluster model the most clients
  // picked in the last round.
  std::vector<float> clusters;
  std::vector<std::unique_ptr<ServerOptimizer>> cluster_servers;
  std::vector<std::unique_ptr<exchange::Exchange>> cluster_exchanges;

  // Built from the config; nothing of them is carried between rounds outside `clients`.
  std::unique_ptr<Problem> problem;
  // One algorithm instance per client thread (clients.threads), each with its own buffers
  // (Note [Client threads] in core/worker_pool.h); the problem holds as many model instances.
  std::vector<std::unique_ptr<Algorithm>> algorithms;
  // One per client thread as well (Note [Personal models] in algo/personalization.h); their
  // personal models live in `clients`.
  std::vector<std::unique_ptr<Personalization>> personal;
  // Decentralized runs (algorithm gossip, dsgd, choco_*, gradient_tracking): the graph, the
  // nodes' models in `clients` and their transport; null otherwise. x is then the nodes' average.
  std::unique_ptr<decentral::Network> network;
  // Differential privacy (Note [DP-FedAvg] in privacy/dp.h); disabled by default. Its noise
  // multiplier is calibrated here when asked, so every rank uses the same.
  privacy::DpOptions dp;
  // Iterate averaging (Note [Iterate averaging] in algo/averaging.h): carried, and saved by
  // rank 0's part of a checkpoint.
  IterateAverage average;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<ClientBehaviour> behaviour;
  int num_clients = 0, per_round = 0;
  ClientBlock mine;  // the clients this rank owns
  ClientStateAccount client_state;

  // This rank's part of a checkpoint: its clients' slots and the exchange's state (collective
  // under the shard plan, whose rule state is spread over ranks).
  StateBundle save_local() const;
  // Rank 0's part: the model, the server optimizer, the downlink and the algorithm's server
  // state.
  StateBundle save_shared() const;
  // Puts back a checkpoint's state after `round` completed rounds (every rank reads the whole
  // bundle and keeps its own clients). Throws UsageError when the checkpoint's model has another
  // size.
  void load(const StateBundle& b, long long round, const std::string& source);
};

// Collective: builds everything (Note [One setup for run and validate]). Throws UsageError on
// every rank (message on the lowest rank that saw it) for a config the run cannot start with.
RunState build(const Config& cfg, comm::Communicator& comm);

// A lower bound on the bytes one rank holds during a run with d parameters: the model, message
// and aggregate buffers, exact sums, optimizer and attack state, a robust rule's messages and the
// per-client state (error feedback, worker momentum) of the clients a rank keeps.
double run_bytes_per_rank(const Config& cfg, std::int64_t d, int num_clients, int per_round,
                          int ranks);

}  // namespace cohort::algo
