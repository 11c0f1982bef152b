// bucketing (docs/algorithms.md §3): average random groups of s messages, then apply a robust rule.
#pragma once

#include <memory>
#include <vector>

#include "robust/aggregator.h"

namespace cohort::robust {

class Bucketing final : public Aggregator {
 public:
  Bucketing(int s, std::unique_ptr<Aggregator> inner) : s_(s), inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name() + "+bucketing"; }
  // Permutes the rows with Rng(seed, round, kGlobalClient, kAggregation).shuffle, averages
  // consecutive groups of s (the last may be smaller; weights add up), gives the ceil(n/s)
  // bucket means to the inner rule. report.selected: the clients of the buckets the inner rule
  // selected (ascending); report.scores: each row gets its bucket's score.
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;
  bool shardable() const override { return inner_->shardable(); }
  std::vector<float> saved_state() const override { return inner_->saved_state(); }
  void restore_state(std::vector<float> v) override { inner_->restore_state(std::move(v)); }
  // The permutation aggregate() uses for n rows (row perm[j] goes to bucket j / s).
  static std::vector<int> permutation(const Context& ctx, int n);
  const Aggregator& inner() const { return *inner_; }

 private:
  int s_;
  std::unique_ptr<Aggregator> inner_;
};

// aggregator.bucketing, an option of every robust rule (make_aggregator wraps the rule).
Field<AggregatorOptions> bucketing_field();

}  // namespace cohort::robust
