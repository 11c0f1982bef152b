// sgd: server-only SGD ("FedSGD"): each sampled client sends one minibatch gradient at x.
#include "algo/sgd.h"

#include "algo/interrupt.h"

namespace cohort::algo {

ClientResult SgdAlgorithm::client_message(Problem& problem, int c, std::uint32_t round,
                                          const float* x, float* message) {
  // One minibatch per client: the check between clients (runner) and this one bound the wait.
  if (abandon_local_work()) return ClientResult{0.0, 0};
  BatchStream batches(problem.client_samples(c), batch_size_,
                      Rng(seed_, round, static_cast<std::uint32_t>(c), Purpose::kBatches));
  Rng noise(seed_, round, static_cast<std::uint32_t>(c), Purpose::kDataGeneration);
  const double loss = problem.loss_grad(c, x, batches.next(), message, noise);
  return ClientResult{loss, 1};
}

AlgorithmRegistration sgd_registration() {
  return {"sgd",
          "server-only SGD (FedSGD): one minibatch gradient per sampled client at x",
          {opt_int("batch_size", 32, "minibatch size; 0: the client's full data")},
          [](const Config& cfg, std::int64_t) {
            return std::make_unique<SgdAlgorithm>(static_cast<std::uint64_t>(cfg.get_int("seed")),
                                                  cfg.get_int("algorithm.batch_size"));
          }};
}

}  // namespace cohort::algo
