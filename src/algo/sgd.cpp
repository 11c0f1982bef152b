// sgd: server-only SGD ("FedSGD"): each sampled client sends one minibatch gradient at x,
// clipped and with weight decay at x (docs/algorithms.md §1.1).
#include "algo/sgd.h"

#include "algo/interrupt.h"
#include "core/errors.h"

namespace cohort::algo {

ClientResult SgdAlgorithm::client_message(Problem& problem, int c, std::uint32_t round,
                                          const float* x, float* message) {
  // One minibatch per client: the check between clients (runner) and this one bound the wait.
  if (abandon_local_work()) return ClientResult{0.0, 0};
  BatchStream batches(problem.client_samples(c), batch_size_,
                      Rng(seed_, round, static_cast<std::uint32_t>(c), Purpose::kBatches));
  Rng noise(seed_, round, static_cast<std::uint32_t>(c), Purpose::kDataGeneration);
  double loss = 0;
  if (dp_sgd_.enabled) {  // Note [DP-SGD]: a Poisson batch, clipped and noised
    privacy::DpSgdSteps dp(dp_sgd_, seed_, round, c, problem.client_samples(c));
    loss = problem.clipped_loss_grad(c, x, dp.next_batch(), dp_sgd_.clip, dp.denominator(),
                                     message, noise);
    dp.add_noise(message, problem.num_params());
  } else {
    loss = problem.loss_grad(c, x, batches.next(), message, noise);
  }
  gradient_.apply(message, x, problem.num_params());
  return ClientResult{loss, 1};
}

AlgorithmRegistration sgd_registration() {
  return {"sgd",
          "server-only SGD (FedSGD): one minibatch gradient per sampled client at x",
          {opt_int("batch_size", 32, "minibatch size; 0: the client's full data")},
          [](const Config& cfg, std::int64_t) {
            // sgd has no local rate: its clients take no step.
            require_usage(cfg.get_string("algorithm.lr_schedule.name") == "constant" &&
                              cfg.get_int("algorithm.lr_schedule.warmup_rounds") == 0,
                          "algorithm.lr_schedule schedules fedavg's algorithm.local_lr; "
                          "algorithm.name = sgd takes no local step: schedule the server's rate "
                          "with server_optimizer.lr_schedule");
            return std::make_unique<SgdAlgorithm>(static_cast<std::uint64_t>(cfg.get_int("seed")),
                                                  cfg.get_int("algorithm.batch_size"),
                                                  GradientOptions::from_config(cfg),
                                                  privacy::DpSgdOptions::from_config(cfg));
          }};
}

}  // namespace cohort::algo
