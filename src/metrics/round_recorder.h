// What one round leaves behind: its rows in the results file and its progress line.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metrics/results_file.h"

namespace cohort::metrics {

// The measurements of one completed round, the same on every rank (reduced before they get here).
struct RoundRecord {
  long long round = 0;  // 1-based, as printed
  std::vector<std::int64_t> sampled;  // the round's sampled clients, ascending
  std::int64_t clients = -1;  // how many; -1: sampled.size() (Poisson rows are padded)
  double train_loss = 0;
  double test_loss = NAN, accuracy = NAN;  // NaN: not evaluated this round (or no accuracy)
  std::vector<std::string> extra_names;  // problem-specific metrics (NaN: not evaluated)
  std::vector<double> extra;
  double uplink_bits = 0, downlink_bits = 0;
  std::vector<std::int64_t> client_bits;  // per sampled client, aligned with `sampled`
  std::int64_t byzantine_sampled = 0;
  // The round's learning rates (Note [Schedules of the round] in algo/schedule.h); local_lr is
  // NaN for an algorithm without one, and then not recorded.
  double local_lr = NAN, server_lr = NAN;
  std::optional<double> dist_honest;  // with an attack: ||g - honest mean|| (NaN: no g)
  std::int64_t dropped_nonfinite = 0;
  std::optional<std::vector<std::int64_t>> selected;  // selecting rules: 1 per chosen client
  // Phase times (local, comm, aggregate, eval): min / average / max over ranks, and the round.
  double time_min[4] = {}, time_avg[4] = {}, time_max[4] = {};
  double time_round = 0;
  std::string diverged;  // why the run diverged in this round; empty when it did not
};

// Rank 0 records every round into the results file and prints the progress line; on other ranks
// (out == nullptr) record() does nothing.
class RoundRecorder {
 public:
  RoundRecorder(ResultsFile* out, long long rounds, long long progress_every)
      : out_(out), rounds_(rounds), progress_every_(progress_every) {}
  // elapsed: seconds since the run started, for the progress line's rate and ETA.
  void record(const RoundRecord& r, double elapsed);

 private:
  ResultsFile* out_;
  long long rounds_, progress_every_;
};

// "12.3 Mbit", "4m05s": the progress line's units.
std::string human_bits(double bits);
std::string human_seconds(double seconds);

}  // namespace cohort::metrics
