// bulyan (docs/algorithms.md §3): repeated Krum selection, then a trimmed mean around the median.
#pragma once

#include "robust/aggregator.h"

namespace cohort::robust {

class Bulyan final : public Aggregator {
 public:
  explicit Bulyan(int f) : f_(f) {}
  std::string name() const override { return "bulyan"; }
  // Selects theta = n - 2f rows by repeated Krum on one distance matrix (each winner removed,
  // scores recomputed on the rest with the same f; ties: lowest row), then per coordinate
  // averages the theta - 2f selected values closest to their median (for even theta, the mean of
  // the two middle values). Closeness ties go to the smaller value, so the kept values are a
  // window of the sorted order found by growing it from the median outwards.
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;

 private:
  int f_;
};

// Its schema entry and factory (Note [Registration]).
AggregatorRegistration bulyan_registration();

}  // namespace cohort::robust
