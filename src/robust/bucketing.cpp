#include "robust/bucketing.h"

#include <algorithm>
#include <numeric>

namespace cohort::robust {

void Bucketing::check_inputs(int n) const { inner_->check_inputs((n + s_ - 1) / s_); }

std::vector<int> Bucketing::permutation(const Context& ctx, int n) {
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  Rng rng(ctx.seed, ctx.round, kGlobalClient, Purpose::kAggregation);
  rng.shuffle(std::span<int>(perm));
  return perm;
}

void Bucketing::aggregate(const Messages& m, const Context& ctx, float* out, Report& report) {
  const int n = m.n;
  const int buckets = (n + s_ - 1) / s_;
  const std::vector<int> perm = permutation(ctx, n);
  const std::size_t d = static_cast<std::size_t>(m.d);
  std::vector<float> means(static_cast<std::size_t>(buckets) * d);
  std::vector<double> weights;
  std::vector<int> ids(buckets);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<const float*> rows;
  for (int g = 0; g < buckets; ++g) {
    rows.clear();
    double w = 0;
    for (int j = g * s_; j < std::min(n, (g + 1) * s_); ++j) {
      rows.push_back(m.row(perm[j]));
      if (!m.weights.empty()) w += m.weights[perm[j]];
    }
    combine_rows(rows, nullptr, static_cast<double>(rows.size()), m.d, means.data() + g * d);
    if (!m.weights.empty()) weights.push_back(w);
  }
  Messages inner;
  inner.data = means.data();
  inner.n = buckets;
  inner.d = m.d;
  inner.clients = ids;
  inner.weights = weights;
  Report r;
  inner_->aggregate(inner, ctx, out, r);
  report.selected.clear();
  for (int g : r.selected)
    for (int j = g * s_; j < std::min(n, (g + 1) * s_); ++j)
      report.selected.push_back(m.client(perm[j]));
  std::sort(report.selected.begin(), report.selected.end());
  report.scores.clear();
  if (!r.scores.empty()) {
    report.scores.assign(n, 0.0);
    for (int j = 0; j < n; ++j) report.scores[perm[j]] = r.scores[j / s_];
  }
}

Field<AggregatorOptions> bucketing_field() {
  return field(opt_int("bucketing", 0,
                       "robust rules: average random groups of this many messages first (0 or 1: "
                       "off)"),
               &AggregatorOptions::bucket);
}

}  // namespace cohort::robust
