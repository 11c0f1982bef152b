#include "algo/fedavg.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <utility>

#include "algo/interrupt.h"
#include "core/errors.h"

namespace cohort::algo {

FedAvgOptions FedAvgOptions::from_config(const Config& cfg) {
  FedAvgOptions o = steps_from_config(cfg);
  o.local_momentum = cfg.get_float("algorithm.local_momentum");
  o.keep_momentum = cfg.get_string("algorithm.local_momentum_state") == "keep";
  o.dp_sgd = privacy::DpSgdOptions::from_config(cfg);
  return o;
}

FedAvgOptions FedAvgOptions::steps_from_config(const Config& cfg) {
  FedAvgOptions o;
  o.local_steps = cfg.get_int("algorithm.local_steps");
  o.local_epochs = cfg.get_int("algorithm.local_epochs");
  o.batch_size = cfg.get_int("algorithm.batch_size");
  o.local_lr = cfg.get_float("algorithm.local_lr");
  o.schedule = LrSchedule::from_config(cfg, "algorithm.lr_schedule", o.local_lr,
                                       "algorithm.local_lr");
  o.gradient = GradientOptions::from_config(cfg);
  require_usage(o.local_steps > 0 || o.local_epochs > 0,
                "algorithm.local_steps and algorithm.local_epochs are both 0: set one of them "
                "to at least 1");
  return o;
}

std::vector<Option> local_step_options(bool momentum) {
  std::vector<Option> o = {
      opt_int("local_steps", 0, "local SGD steps K; 0: use local_epochs"),
      opt_int("local_epochs", 1, "passes over the client's data when local_steps is 0"),
      opt_int("batch_size", 32, "minibatch size B; 0: the client's full data"),
      opt_float("local_lr", 0.05,
                "local learning rate eta_l (the base rate of algorithm.lr_schedule)", 0, INFINITY,
                true)};
  if (!momentum) return o;
  o.push_back(opt_float("local_momentum", 0.0,
                        "heavy-ball momentum beta of the local steps: v <- beta v + g, "
                        "y <- y - eta_l v; 0: plain SGD steps",
                        0, 1));
  o.push_back(opt_enum("local_momentum_state", "reset", {"reset", "keep"},
                       "reset: v = 0 at the start of every round; keep: each client keeps its v "
                       "from one participation to the next (client state, in checkpoints)"));
  return o;
}

AlgorithmRegistration fedavg_registration() {
  return {"fedavg", "K local SGD steps (or E local epochs), client sends x - y_K",
          local_step_options(), [](const Config& cfg, std::int64_t num_params) {
            return std::make_unique<FedAvgAlgorithm>(
                static_cast<std::uint64_t>(cfg.get_int("seed")), FedAvgOptions::from_config(cfg),
                num_params);
          }};
}

AlgorithmRegistration fedprox_registration() {
  auto options = local_step_options();
  options.push_back(opt_float("mu", 0.0,
                              "proximal weight mu: the local objective adds (mu/2)|y - x|^2, so "
                              "each local gradient gets mu (y - x); 0: fedavg",
                              0));
  return {"fedprox", "fedavg whose local objective adds (mu/2)|y - x|^2 (drift towards x)",
          std::move(options), [](const Config& cfg, std::int64_t num_params) {
            FedAvgOptions o = FedAvgOptions::from_config(cfg);
            o.name = "fedprox";
            o.prox_mu = cfg.get_float("algorithm.mu");
            return std::make_unique<FedAvgAlgorithm>(
                static_cast<std::uint64_t>(cfg.get_int("seed")), std::move(o), num_params);
          }};
}

FedAvgAlgorithm::FedAvgAlgorithm(std::uint64_t seed, FedAvgOptions o, std::int64_t num_params)
    : seed_(seed), o_(std::move(o)), y_(static_cast<std::size_t>(num_params)),
      grad_(static_cast<std::size_t>(num_params)) {
  if (o_.local_momentum > 0 && !o_.keep_momentum)
    velocity_.resize(static_cast<std::size_t>(num_params));
}

void FedAvgAlgorithm::declare_state(ClientStore& store) {
  store_ = &store;
  if (o_.local_momentum > 0 && o_.keep_momentum) {
    momentum_ = store.slot("local_momentum");  // declared by another thread's instance
    if (momentum_ == ClientStore::kNone)
      momentum_ = store.declare("local_momentum", "local momentum",
                                static_cast<std::int64_t>(y_.size()));
  }
}

LocalRound::LocalRound(const FedAvgOptions& o, Problem& problem, std::uint64_t seed, int c,
                       std::uint32_t round)
    : batches(problem.client_samples(c), o.batch_size,
              Rng(seed, round, static_cast<std::uint32_t>(c), Purpose::kBatches)),
      noise(seed, round, static_cast<std::uint32_t>(c), Purpose::kDataGeneration),
      steps(o.local_steps > 0 ? o.local_steps : o.local_epochs * batches.batches_per_epoch()),
      lr(static_cast<float>(o.schedule.at(round))) {}

ClientResult FedAvgAlgorithm::client_message(Problem& problem, int c, std::uint32_t round,
                                             const float* x, float* message) {
  const std::int64_t d = static_cast<std::int64_t>(y_.size());
  auto [batches, noise, local_steps, lr] = LocalRound(o_, problem, seed_, c, round);
  // Note [DP-SGD]: Poisson batches, clipped and noised gradients, K steps whatever the batches.
  std::optional<privacy::DpSgdSteps> dp;
  if (o_.dp_sgd.enabled) dp.emplace(o_.dp_sgd, seed_, round, c, problem.client_samples(c));
  const std::int64_t steps = dp ? o_.dp_sgd.steps_per_round : local_steps;
  std::copy_n(x, d, y_.data());
  // Local momentum: this round's v (reset: zeros), or the client's kept v, zeros before its
  // first participation.
  float* v = nullptr;
  if (o_.local_momentum > 0 && o_.keep_momentum && d > 0 && momentum_ == ClientStore::kNone)
    throw std::logic_error("fedavg: kept local momentum without declare_state");
  if (momentum_ != ClientStore::kNone) {
    v = store_->row(momentum_, c).data();
  } else if (!velocity_.empty()) {
    std::fill(velocity_.begin(), velocity_.end(), 0.0f);
    v = velocity_.data();
  }
  const double beta = o_.local_momentum;
  double loss_sum = 0;
  std::int64_t empty_batches = 0;  // dp_sgd: Poisson batches without a sample have no loss
  for (std::int64_t k = 0; k < steps; ++k) {
    if (abandon_local_work()) break;  // the round is dropped (Note [Stopping mid-round])
    if (dp) {
      const auto batch = dp->next_batch();
      loss_sum += problem.clipped_loss_grad(c, y_.data(), batch, o_.dp_sgd.clip,
                                            dp->denominator(), grad_.data(), noise);
      empty_batches += batch.empty();
      dp->add_noise(grad_.data(), d);
    } else {
      loss_sum += problem.loss_grad(c, y_.data(), batches.next(), grad_.data(), noise);
    }
    o_.gradient.apply(grad_.data(), y_.data(), d);
    if (o_.prox_mu > 0)  // fedprox: the proximal term's gradient, never clipped
      for (std::int64_t i = 0; i < d; ++i)
        grad_[i] = static_cast<float>(grad_[i] + o_.prox_mu * (y_[i] - x[i]));
    if (v == nullptr) {
      for (std::int64_t i = 0; i < d; ++i) y_[i] -= lr * grad_[i];
    } else {
      for (std::int64_t i = 0; i < d; ++i) {
        v[i] = static_cast<float>(beta * v[i] + grad_[i]);
        y_[i] -= lr * v[i];
      }
    }
  }
  for (std::int64_t i = 0; i < d; ++i) message[i] = x[i] - y_[i];
  const std::int64_t with_loss = std::max<std::int64_t>(steps - empty_batches, 1);
  return ClientResult{loss_sum / static_cast<double>(with_loss), steps};
}

}  // namespace cohort::algo
