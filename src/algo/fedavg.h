#pragma once

#include <vector>

#include "algo/algorithm.h"

namespace cohort::algo {

struct FedAvgOptions {
  std::int64_t local_steps = 0;   // K; 0: use local_epochs
  std::int64_t local_epochs = 1;  // E
  std::int64_t batch_size = 32;   // B; 0: full batch
  double local_lr = 0.05;         // eta_l
  // The algorithm.* keys fedavg_registration declares.
  static FedAvgOptions from_config(const Config& cfg);
};

// fedavg: y = x; K local SGD steps y <- y - eta_l grad f_c(y; batch); message x - y_K.
class FedAvgAlgorithm final : public Algorithm {
 public:
  FedAvgAlgorithm(std::uint64_t seed, FedAvgOptions o, std::int64_t num_params);
  std::string name() const override { return "fedavg"; }
  ClientResult client_message(Problem& problem, int c, std::uint32_t round, const float* x,
                              float* message) override;

 private:
  std::uint64_t seed_;
  FedAvgOptions o_;
  std::vector<float> y_, grad_;
};

// Its options, schema entry and factory (Note [Registration]).
AlgorithmRegistration fedavg_registration();

}  // namespace cohort::algo
