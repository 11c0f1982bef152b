#pragma once

#include <string>
#include <vector>

#include "algo/algorithm.h"
#include "algo/schedule.h"
#include "privacy/dp_sgd.h"

namespace cohort::algo {

struct FedAvgOptions {
  std::int64_t local_steps = 0;   // K; 0: use local_epochs
  std::int64_t local_epochs = 1;  // E
  std::int64_t batch_size = 32;   // B; 0: full batch
  double local_lr = 0.05;         // eta_l
  LrSchedule schedule{0.05};      // eta_l(t), from algorithm.lr_schedule
  GradientOptions gradient;       // weight decay and clipping
  double local_momentum = 0;      // beta_l; 0: plain SGD steps
  bool keep_momentum = false;     // local_momentum_state: keep (per client) or reset (per round)
  std::string name = "fedavg";    // fedavg or fedprox
  double prox_mu = 0;             // fedprox's mu: g <- g + mu (y - x); 0: fedavg's step exactly
  privacy::DpSgdOptions dp_sgd;   // privacy.name = dp_sgd: private steps (Note [DP-SGD])
  // The algorithm.* keys fedavg_registration declares (and fedprox's algorithm.mu when the
  // algorithm is fedprox).
  static FedAvgOptions from_config(const Config& cfg);
  // The same without the local momentum keys (for algorithms that do not declare them).
  static FedAvgOptions steps_from_config(const Config& cfg);
};

// How every algorithm with local steps (fedavg, fedprox, scaffold, mime, mimelite) starts client
// c's round: its minibatch and data-noise streams, keyed by (seed, round, c), the number of local
// steps K (local_steps, or local_epochs passes over the client's data) and the round's local rate.
struct LocalRound {
  LocalRound(const FedAvgOptions& o, Problem& problem, std::uint64_t seed, int c,
             std::uint32_t round);
  BatchStream batches;
  Rng noise;
  std::int64_t steps;
  float lr;
};

// fedavg: y = x; K local SGD steps y <- y - eta_l(t) g with g the minibatch gradient (dp_sgd:
// the private gradient of Note [DP-SGD] on a Poisson batch) after clipping and weight decay
// (with local momentum: v <- beta v + g; y <- y - eta_l(t) v); message x - y_K (docs/algorithms.md §1.1). fedprox is the same with the proximal term's gradient
// mu (y - x) added to g after clipping and weight decay.
class FedAvgAlgorithm final : public Algorithm {
 public:
  FedAvgAlgorithm(std::uint64_t seed, FedAvgOptions o, std::int64_t num_params);
  std::string name() const override { return o_.name; }
  ClientResult client_message(Problem& problem, int c, std::uint32_t round, const float* x,
                              float* message) override;
  // Kept local momentum lives in slot "local_momentum" (Note [Client store]).
  void declare_state(ClientStore& store) override;
  double local_lr(std::uint32_t round) const override { return o_.schedule.at(round); }

 private:
  std::uint64_t seed_;
  FedAvgOptions o_;
  std::vector<float> y_, grad_, velocity_;  // velocity_: reset momentum, one round's
  ClientStore* store_ = nullptr;
  ClientStore::Slot momentum_ = ClientStore::kNone;
};

// Its options, schema entry and factory (Note [Registration]).
AlgorithmRegistration fedavg_registration();
// fedprox: fedavg's options and algorithm.mu.
AlgorithmRegistration fedprox_registration();
// The algorithm.* options of fedavg's local steps, which fedprox (and other algorithms that take
// local SGD steps) declare as well; momentum: with the local momentum keys.
std::vector<Option> local_step_options(bool momentum = true);

}  // namespace cohort::algo
