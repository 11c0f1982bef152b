// The round loop (docs/architecture.md "The round"): build the RunState, resume it from a
// checkpoint, then Round::execute until the last round, recording each round.
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/config.h"
#include "core/errors.h"

namespace cohort::algo {

struct RunOutcome {
  std::string status;   // completed | diverged | preempted
  std::string message;
  long long rounds_done = 0;
  double final_test_loss = 0.0;
  double final_accuracy = 0.0;  // NaN when the problem has no accuracy
  std::string results_path;
  std::vector<float> final_model;
};

// Exit codes of `cohort run` by outcome.
inline constexpr int kExitDiverged = 3;
inline constexpr int kExitPreempted = 130;

struct RunOptions {
  // Replace an existing cohort results file at output.path (`cohort run --overwrite`); a file
  // that is not a results file is never replaced (Note [Results file ownership]).
  bool overwrite = false;
  // Continue from the newest valid checkpoint of this config (`cohort run --resume`; Note
  // [Checkpoints]); without one the run starts from round 1.
  bool resume = false;
};

// Runs the configured experiment on this rank. Collective: every rank calls it with the same
// config. Throws UsageError (identically on every rank, or collectively re-thrown on the rank
// that saw it) for problems found before the first round, output.path included: rank 0 claims
// it before the data is loaded.
RunOutcome run_experiment(const Config& cfg, comm::Communicator& comm,
                          const RunOptions& options = {});

// Runs f on every rank; when any rank throws UsageError, the lowest such rank re-throws it and
// the other ranks throw an empty UsageError, so all ranks leave together (exit code 2) and the
// message is printed once. Other exceptions propagate (the caller aborts the job).
template <class F>
void collectively(comm::Communicator& comm, F&& f) {
  std::string msg;
  bool failed = false;
  try {
    f();
  } catch (const UsageError& e) {
    msg = e.what();
    failed = true;
  }
  const std::int64_t first = comm.allreduce_scalar(
      static_cast<std::int64_t>(failed ? comm.rank() : comm.size()), comm::ReduceOp::kMin);
  if (first < comm.size()) throw UsageError(first == comm.rank() ? msg : std::string());
}

}  // namespace cohort::algo
