// zeno (docs/algorithms.md §3): keep the messages whose step most decreases a validation loss.
#pragma once

#include "robust/aggregator.h"

namespace cohort::robust {

class Zeno final : public Aggregator {
 public:
  Zeno(int b, double rho, double gamma) : b_(b), rho_(rho), gamma_(gamma) {}
  std::string name() const override { return "zeno"; }
  // The validation loss needs each whole message.
  bool shardable() const override { return false; }
  // score_i = L(x) - L(x - gamma u_i) - rho ||u_i||^2 with L = ctx.validation_loss, x = ctx.x;
  // out = mean of the n - b highest scores (ties: lower row first). report.scores: per row;
  // report.selected: the kept clients in row order.
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;

 private:
  int b_;
  double rho_, gamma_;
};

// Its options, schema entry and factory (Note [Registration]). batch is the caller's: the runner
// draws the validation minibatch.
AggregatorRegistration zeno_registration();

}  // namespace cohort::robust
