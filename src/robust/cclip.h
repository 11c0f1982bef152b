// cclip: centered clipping from the previous aggregate (docs/algorithms.md §3).
#pragma once

#include <vector>

#include "robust/aggregator.h"

namespace cohort::robust {

class CenteredClip final : public Aggregator {
 public:
  CenteredClip(double tau, int iters) : tau_(tau), iters_(iters) {}
  std::string name() const override { return "cclip"; }
  // v starts from the previous call's output (zero before the first call or when d changes);
  // L times: v <- v + (1/n) sum_i (u_i - v) min(1, tau / ||u_i - v||). The output becomes the
  // state. L + 1 passes over the inputs (Note [cclip passes] in cclip.cpp).
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;
  // The state v (empty before the first call).
  const std::vector<float>& state() const { return v_; }
  std::vector<float> saved_state() const override { return v_; }
  void restore_state(std::vector<float> v) override { v_ = std::move(v); }
  void reset() { v_.clear(); }

 private:
  double tau_;
  int iters_;
  std::vector<float> v_;
};

// Its options, schema entry and factory (Note [Registration]).
AggregatorRegistration cclip_registration();

}  // namespace cohort::robust
