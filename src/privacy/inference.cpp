#include "privacy/inference.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace cohort::privacy {

Reconstruction invert_dense(const float* gw, const float* gb, std::int64_t rows,
                            std::int64_t cols) {
  Reconstruction r;
  r.x.assign(static_cast<std::size_t>(cols), 0.0f);
  double best = 0;
  for (std::int64_t k = 0; k < rows; ++k)
    if (std::fabs(gb[k]) > best) {
      best = std::fabs(gb[k]);
      r.row = k;
    }
  if (r.row < 0) return r;
  r.bias_grad = gb[r.row];
  for (std::int64_t j = 0; j < cols; ++j)
    r.x[static_cast<std::size_t>(j)] =
        static_cast<float>(static_cast<double>(gw[r.row * cols + j]) / r.bias_grad);
  return r;
}

ReconstructionError reconstruction_error(const float* x_hat, const float* x, std::int64_t n) {
  double diff = 0, norm = 0, max_abs = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(x_hat[i]) - x[i];
    diff += e * e;
    norm += static_cast<double>(x[i]) * x[i];
    max_abs = std::max(max_abs, std::fabs(e));
  }
  return {norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff), max_abs};
}

double membership_auc(const std::vector<double>& member_losses,
                      const std::vector<double>& nonmember_losses) {
  if (member_losses.empty() || nonmember_losses.empty())
    throw std::invalid_argument("membership AUC needs members and non-members");
  // Every loss with its side, sorted; a run of equal losses shares its pairs half and half.
  std::vector<std::pair<double, bool>> all;  // (loss, member)
  all.reserve(member_losses.size() + nonmember_losses.size());
  for (double l : member_losses) all.emplace_back(l, true);
  for (double l : nonmember_losses) all.emplace_back(l, false);
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  // Pairs (member, non-member) with the member's loss lower count 1, equal count 1/2: walking up,
  // each member counts the non-members above it; tied groups are taken together.
  double wins = 0;  // in units of 1/2
  double nonmembers_above = static_cast<double>(nonmember_losses.size());
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    double m = 0, o = 0;
    while (j < all.size() && all[j].first == all[i].first) {
      (all[j].second ? m : o) += 1;
      ++j;
    }
    nonmembers_above -= o;
    wins += m * (2 * nonmembers_above + o);
    i = j;
  }
  return wins / (2.0 * static_cast<double>(member_losses.size()) *
                 static_cast<double>(nonmember_losses.size()));
}

}  // namespace cohort::privacy
