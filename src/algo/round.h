// One round of a run (docs/architecture.md "The round"): RunState after t rounds -> RunState
// after t + 1 rounds, and the round's measurements.
#pragma once

#include <cstdint>
#include <vector>

#include "algo/run_state.h"
#include "algo/schedule.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "metrics/round_recorder.h"

namespace cohort::algo {

class Round {
 public:
  // The config's constants a round needs (seed, weighting, evaluation schedule, ...).
  Round(const Config& cfg, comm::Communicator& comm);

  struct Result {
    // The round was interrupted during its local phase on some rank and dropped on every rank
    // (Note [Stopping mid-round] in algo/runner.cpp): the state is no longer usable and the
    // runner restores the one it kept. Only possible when may_abandon was true.
    bool abandoned = false;
    metrics::RoundRecord record;
    // Reduced over ranks: the slowest rank's local phase and cost of keeping the start state.
    double local_max = 0, keep_cost_max = 0;
  };
  // Collective: runs round s.round + 1 and advances s.round. keep_cost: seconds this rank spent
  // keeping the round's start state (reported with the phase times).
  Result execute(RunState& s, bool may_abandon, double keep_cost);

 private:
  comm::Communicator& comm_;
  std::uint64_t seed_;
  long long rounds_, eval_every_;
  bool weighted_, selecting_rule_;
  int zeno_batch_;
  LrSchedule server_lr_;  // server_optimizer.lr_schedule (Note [Schedules of the round])
  std::vector<std::vector<float>> msgs_;  // one message per client thread
  std::vector<ClientResult> results_;     // and its client's result
  std::vector<float> g_;
  std::vector<std::int64_t> counts_;  // clients' sample counts (weighted mean only)
};

}  // namespace cohort::algo
