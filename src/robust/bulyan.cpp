#include "robust/bulyan.h"

#include <algorithm>
#include <numeric>

#include "robust/cm.h"
#include "robust/krum.h"

namespace cohort::robust {

void Bulyan::check_inputs(int n) const { check_krum_count("bulyan", n, f_, 4); }

void Bulyan::aggregate(const Messages& m, const Context& ctx, float* out, Report& report) {
  const int n = m.n;
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  const auto dist = gram_distances(centered_gram(rows, n, false, m.d, ctx.shard), n, n);
  const int theta = n - 2 * f_;
  std::vector<int> rest(n);
  std::iota(rest.begin(), rest.end(), 0);
  std::vector<int> chosen;
  for (int t = 0; t < theta; ++t) {
    const auto scores = krum_scores(dist, n, rest, f_);
    const auto best = std::min_element(scores.begin(), scores.end()) - scores.begin();
    chosen.push_back(rest[best]);
    rest.erase(rest.begin() + best);
  }
  std::sort(chosen.begin(), chosen.end());
  report.selected.clear();
  std::vector<const float*> sel;
  for (int i : chosen) {
    sel.push_back(m.row(i));
    report.selected.push_back(m.client(i));
  }
  const int beta = theta - 2 * f_;
  const SortNetwork net = make_sort_network(theta, 0, theta);
  std::vector<float> v(theta);
  sort_columns(
      sel, m.d, net, [&](std::int64_t k0, std::int64_t len, const float* s, std::int64_t stride) {
        for (std::int64_t k = 0; k < len; ++k) {
          for (int r = 0; r < theta; ++r) v[r] = s[net.rank_slot[r] * stride + k];
          const double med = theta % 2 == 1
                                 ? v[theta / 2]
                                 : 0.5 * (static_cast<double>(v[theta / 2 - 1]) + v[theta / 2]);
          // Grow a window [lo, hi) around the median, taking the closer end (ties: the smaller).
          int hi = static_cast<int>(std::lower_bound(v.begin(), v.end(), med) - v.begin());
          int lo = hi;
          for (int c = 0; c < beta; ++c) {
            if (hi >= theta || (lo > 0 && med - v[lo - 1] <= v[hi] - med))
              --lo;
            else
              ++hi;
          }
          double sum = 0;
          for (int r = lo; r < hi; ++r) sum += v[r];
          out[k0 + k] = static_cast<float>(sum / beta);
        }
      });
}

AggregatorRegistration bulyan_registration() {
  return {"bulyan",
          "repeated Krum selection, then a trimmed mean around the median (n >= 4f+3)",
          {f_field()},
          [](const AggregatorOptions& o) {
            check_f(o);
            return std::make_unique<Bulyan>(o.f);
          }};
}

}  // namespace cohort::robust
