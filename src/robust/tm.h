// tm: coordinate-wise trimmed mean (docs/algorithms.md §3).
#pragma once

#include "robust/aggregator.h"

namespace cohort::robust {

class TrimmedMean final : public Aggregator {
 public:
  explicit TrimmedMean(int b) : b_(b) {}
  std::string name() const override { return "tm"; }
  // Per coordinate: drop the b largest and b smallest values, average the n - 2b left (summed in
  // double in ascending order; Note [Sorting networks] in cm.h).
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;

 private:
  int b_;
};

// Its options, schema entry and factory (Note [Registration]).
AggregatorRegistration tm_registration();

}  // namespace cohort::robust
