// Iterate averaging (docs/algorithms.md §1.5): the server keeps a weighted average of the global
// models it produced, and evaluations use that average.
//
// Note [Iterate averaging]
// averaging.name = weighted keeps x̄_T = sum_{t=s+1..T} w_t x_t / sum_{t=s+1..T} w_t over the
// models x_t after rounds t = 1..T (1-based), with w_t = (a + t)^p, a = shift, p = power and s =
// start (the rounds before it are left out). p = 0 is the uniform average; Mem-SGD (Stich,
// Cordonnier, Jaggi 2018) uses p = 2 with a the shift of its 1/t step size. The sum is kept in
// double, in round order, on every rank from the same x, so every rank holds the same x̄ and a
// checkpoint (rank 0's part: the sum and the weight total) resumes it bit for bit. The average
// only observes the run: training continues from x, and the test metrics of each evaluation
// round are those of x̄ (of x while no round has been averaged yet). With output.save_model the
// results file also holds x̄ under /model_averaged/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/schema.h"
#include "core/state.h"

namespace cohort::algo {

class IterateAverage {
 public:
  IterateAverage() = default;
  // The averaging.* keys of a resolved config (UsageError naming the key), for d parameters.
  static IterateAverage from_config(const Config& cfg, std::int64_t d);

  bool enabled() const { return enabled_; }
  // Adds the model after round t (1-based); rounds up to `start` are skipped.
  void add(const std::vector<float>& x, long long t);
  // Whether any round has been averaged, and x̄ (d floats) when so.
  bool any() const { return total_ > 0; }
  void read(std::vector<float>& out) const;
  double weight(long long t) const;
  std::string describe() const;

  void save(StateBundle& b) const;
  void load(const StateBundle& b, const std::string& source);

 private:
  bool enabled_ = false;
  double power_ = 2, shift_ = 0;
  long long start_ = 0;
  std::vector<double> sum_;
  double total_ = 0;
};

Section averaging_section();

}  // namespace cohort::algo
