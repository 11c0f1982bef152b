// What a run builds before its first round, shared by `cohort run` and `cohort validate`.
//
// Note [One setup for run and validate]
// `validate` promises that `run` will not reject the config before training, so both build the
// run through prepare_run: the problem (data read, partitioned, sizes checked), the memory
// estimate against the machine, the client sampling, algorithm, server optimizer, exchange,
// downlink and client behaviour, including the per-round attack checks that need the data's
// size. A check added to a component's constructor is therefore made by both commands; only
// opening the results file is left to `run`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "algo/clients.h"
#include "algo/problem.h"
#include "algo/server_optimizer.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "exchange/downlink.h"
#include "exchange/exchange.h"

namespace cohort::algo {

// Note [Client state account]: per-client state (error-feedback memory, worker momentum, a
// compressor's state such as PowerSGD's Q) lives on the rank that owns the client and is
// allocated at the client's first participation, so its worst case on one rank is the slots'
// size times the clients of the largest rank block that can take part during the run:
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

struct RunSetup {
  std::unique_ptr<Problem> problem;
  ClientStateAccount client_state;
  int num_clients = 0, per_round = 0;
  std::unique_ptr<Algorithm> algorithm;
  std::unique_ptr<ServerOptimizer> server;
  std::unique_ptr<exchange::Exchange> exchange;
  std::vector<float> x;  // the initial model
  std::unique_ptr<exchange::Downlink> downlink;
  std::unique_ptr<ClientBehaviour> behaviour;
};

// Collective: builds everything (Note [One setup for run and validate]). Throws UsageError on
// every rank (message on the lowest rank that saw it) for a config the run cannot start with.
RunSetup prepare_run(const Config& cfg, comm::Communicator& comm);

// A lower bound on the bytes one rank holds during a run with d parameters: the model, message
// and aggregate buffers, exact sums, optimizer and attack state, a robust rule's messages and the
// per-client state (error feedback, worker momentum) of the clients a rank keeps.
double run_bytes_per_rank(const Config& cfg, std::int64_t d, int num_clients, int per_round,
                          int ranks);

}  // namespace cohort::algo
