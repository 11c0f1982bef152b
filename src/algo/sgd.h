#pragma once

#include "algo/algorithm.h"
#include "privacy/dp_sgd.h"

namespace cohort::algo {

class SgdAlgorithm final : public Algorithm {
 public:
  SgdAlgorithm(std::uint64_t seed, std::int64_t batch_size, GradientOptions gradient = {},
               privacy::DpSgdOptions dp_sgd = {})
      : seed_(seed), batch_size_(batch_size), gradient_(gradient), dp_sgd_(dp_sgd) {}
  std::string name() const override { return "sgd"; }
  ClientResult client_message(Problem& problem, int c, std::uint32_t round, const float* x,
                              float* message) override;

 private:
  std::uint64_t seed_;
  std::int64_t batch_size_;
  GradientOptions gradient_;  // clipping, then weight decay at x
  privacy::DpSgdOptions dp_sgd_;  // privacy.name = dp_sgd: one private gradient (Note [DP-SGD])
};

// Its options, schema entry and factory (Note [Registration]).
AlgorithmRegistration sgd_registration();

}  // namespace cohort::algo
