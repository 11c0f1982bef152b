// The inference attacks of docs/algorithms.md §6: gradient inversion of a fully connected first
// layer and membership inference by loss threshold (`cohort attack-privacy`).
//
// Note [Gradient inversion]
// For a first layer z = W a + b on the input a, one example's gradient is (delta a^T, delta) with
// delta = dL/dz: every row k with delta_k != 0 holds a copy of the input scaled by delta_k, so
// a = (dL/dW)_k / (dL/db)_k exactly (Phong et al. 2018; Geiping et al. 2020 §3). A batch's
// gradient is the mean of such rows, so the ratio is a mixture of the batch's inputs weighted by
// their delta_k: the reconstruction is reported against each input of the batch, and the nearest
// one counts. The row with the largest |dL/db_k| is used: its division amplifies rounding (and
// noise) least. DP noise on both parts makes the ratio a ratio of noisy values, and clipping
// scales both parts alike (it does not protect by itself).
//
// Note [Membership AUC]
// The loss-threshold attack (Yeom et al. 2018) guesses "member" when an example's loss under the
// final model is below a threshold; its ROC curve over all thresholds has area
//   AUC = P(l_m < l_o) + P(l_m = l_o) / 2,
// l_m the loss of a random member (a training example) and l_o of a random non-member (a test
// example): the Mann-Whitney statistic, computed exactly over every pair by sorting (ties count
// one half). 0.5 is chance; 1 means every member has a lower loss than every non-member.
#pragma once

#include <cstdint>
#include <vector>

namespace cohort::privacy {

struct Reconstruction {
  std::vector<float> x;  // the reconstructed input (cols values)
  std::int64_t row = -1;  // the row k used; -1 when every bias gradient is 0
  double bias_grad = 0;   // dL/db_k
};
// From the first layer's weight gradient gw (rows x cols, row-major) and bias gradient gb (rows).
Reconstruction invert_dense(const float* gw, const float* gb, std::int64_t rows,
                            std::int64_t cols);

struct ReconstructionError {
  double relative = 0;  // |x_hat - x| / |x|
  double max_abs = 0;   // max_i |x_hat_i - x_i|
};
ReconstructionError reconstruction_error(const float* x_hat, const float* x, std::int64_t n);

// The area under the ROC curve of the loss-threshold attack (Note [Membership AUC]).
double membership_auc(const std::vector<double>& member_losses,
                      const std::vector<double>& nonmember_losses);

}  // namespace cohort::privacy
