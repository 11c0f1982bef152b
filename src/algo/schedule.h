// Learning-rate schedules (docs/algorithms.md §1.4): the rate a round uses as a function of the
// round alone, shared by fedavg's local rate (algorithm.lr_schedule) and the server optimizer's
// (server_optimizer.lr_schedule).
//
// Note [Schedules of the round]
// A schedule maps the round index t (0-based: the rounds completed before it) to a rate, and
// nothing else: no counter advances with the calls, and the rate never depends on which rank
// asks, how many ranks there are, or whether the run was resumed from a checkpoint. So a
// schedule carries no state, checkpoints hold nothing for it, and every client of a round and
// every rank sees the same rate, computed in double by the same expression.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/schema.h"

namespace cohort::algo {

class LrSchedule {
 public:
  enum class Kind { kConstant, kStep, kCosine, kInverseTime };

  // A constant rate lr (callers without a config: tests, benchmarks).
  explicit LrSchedule(double lr = 0.0) : lr_(lr) {}
  // The schedule under `path` ("algorithm.lr_schedule") of the base rate lr, named `lr_key`
  // ("algorithm.local_lr") in messages, over the config's `rounds`. Throws UsageError for
  // options no run could use (milestones not increasing or past the last round, a floor above
  // lr, a warmup as long as the run).
  static LrSchedule from_config(const Config& cfg, const std::string& path, double lr,
                                const std::string& lr_key);

  // The rate of round t (0-based).
  double at(long long t) const;
  // Whether the rate can change from round to round (any schedule but a constant without
  // warmup).
  bool varies() const { return kind_ != Kind::kConstant || warmup_rounds_ > 0; }
  double base() const { return lr_; }

 private:
  Kind kind_ = Kind::kConstant;
  double lr_ = 0;
  std::vector<long long> milestones_;  // step: strictly increasing, in rounds
  double factor_ = 0.1;                // step
  double min_lr_ = 0;                  // cosine floor
  double shift_ = 1;                   // inverse_time: a
  long long rounds_ = 1;               // cosine: the run's rounds
  long long warmup_rounds_ = 0;
  double warmup_start_ = 0;  // warmup: the first round's share of the rate
};

// The schedule slot `key` (a child of the algorithm and server_optimizer slots), with the rate it
// scales named in its help.
Section lr_schedule_section(const std::string& rate);

}  // namespace cohort::algo
