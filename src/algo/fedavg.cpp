#include "algo/fedavg.h"

#include <algorithm>
#include <cmath>

#include "algo/interrupt.h"
#include "core/errors.h"

namespace cohort::algo {

FedAvgOptions FedAvgOptions::from_config(const Config& cfg) {
  FedAvgOptions o;
  o.local_steps = cfg.get_int("algorithm.local_steps");
  o.local_epochs = cfg.get_int("algorithm.local_epochs");
  o.batch_size = cfg.get_int("algorithm.batch_size");
  o.local_lr = cfg.get_float("algorithm.local_lr");
  require_usage(o.local_steps > 0 || o.local_epochs > 0,
                "algorithm.local_steps and algorithm.local_epochs are both 0: set one of them "
                "to at least 1");
  return o;
}

AlgorithmRegistration fedavg_registration() {
  return {"fedavg",
          "K local SGD steps (or E local epochs), client sends x - y_K",
          {opt_int("local_steps", 0, "local SGD steps K; 0: use local_epochs"),
           opt_int("local_epochs", 1, "passes over the client's data when local_steps is 0"),
           opt_int("batch_size", 32, "minibatch size B; 0: the client's full data"),
           opt_float("local_lr", 0.05, "local learning rate", 0, INFINITY, true)},
          [](const Config& cfg, std::int64_t num_params) {
            return std::make_unique<FedAvgAlgorithm>(
                static_cast<std::uint64_t>(cfg.get_int("seed")), FedAvgOptions::from_config(cfg),
                num_params);
          }};
}

FedAvgAlgorithm::FedAvgAlgorithm(std::uint64_t seed, FedAvgOptions o, std::int64_t num_params)
    : seed_(seed), o_(o), y_(static_cast<std::size_t>(num_params)),
      grad_(static_cast<std::size_t>(num_params)) {}

ClientResult FedAvgAlgorithm::client_message(Problem& problem, int c, std::uint32_t round,
                                             const float* x, float* message) {
  const std::int64_t d = static_cast<std::int64_t>(y_.size());
  const auto client = static_cast<std::uint32_t>(c);
  BatchStream batches(problem.client_samples(c), o_.batch_size,
                      Rng(seed_, round, client, Purpose::kBatches));
  Rng noise(seed_, round, client, Purpose::kDataGeneration);
  const std::int64_t steps =
      o_.local_steps > 0 ? o_.local_steps : o_.local_epochs * batches.batches_per_epoch();
  std::copy_n(x, d, y_.data());
  const float lr = static_cast<float>(o_.local_lr);
  double loss_sum = 0;
  for (std::int64_t k = 0; k < steps; ++k) {
    if (abandon_local_work()) break;  // the round is dropped (Note [Stopping mid-round])
    loss_sum += problem.loss_grad(c, y_.data(), batches.next(), grad_.data(), noise);
    for (std::int64_t i = 0; i < d; ++i) y_[i] -= lr * grad_[i];
  }
  for (std::int64_t i = 0; i < d; ++i) message[i] = x[i] - y_[i];
  return ClientResult{loss_sum / static_cast<double>(steps), steps};
}

}  // namespace cohort::algo
