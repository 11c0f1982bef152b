#include "algo/mime.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "algo/interrupt.h"
#include "algo/scaffold.h"
#include "core/errors.h"

namespace cohort::algo {
namespace {

AlgorithmRegistration registration(bool lite) {
  const std::string name = lite ? "mimelite" : "mime";
  auto options = local_step_options(false);
  options.push_back(opt_float("beta", 0.9,
                              "server momentum beta in [0, 1): local steps use (1 - beta) g + "
                              "beta m, and m <- (1 - beta) c + beta m after each round"));
  options.push_back(opt_int("grad_batch", 0,
                            "samples of each client's gradient at x before its local work; 0: "
                            "the client's full data"));
  return {
      name,
      lite ? "local steps y <- y - eta_l ((1-beta) g(y) + beta m) with the server momentum m "
             "frozen for the round; sends x - y_K"
           : "mimelite's steps with g(y) - g(x) + c, c the sampled clients' mean gradient "
             "at x; sends x - y_K",
      std::move(options), [lite, name](const Config& cfg, std::int64_t num_params) {
        const double beta = cfg.get_float("algorithm.beta");
        require_usage(beta >= 0 && beta < 1,
                      fmt::format("algorithm.beta = {} is not allowed: expected a number in "
                                  "[0, 1)",
                                  beta));
        require_plain_mean(cfg, "algorithm.name = " + name);
        require_usage(cfg.get_string("server_optimizer.name") == "sgd",
                      "algorithm.name = " + name +
                          " applies its own server momentum "
                          "(algorithm.beta): set server_optimizer.name = sgd (its lr is eta_s), "
                          "not " +
                          cfg.get_string("server_optimizer.name"));
        return std::make_unique<MimeAlgorithm>(static_cast<std::uint64_t>(cfg.get_int("seed")),
                                               FedAvgOptions::steps_from_config(cfg), lite, beta,
                                               cfg.get_int("algorithm.grad_batch"), num_params);
      }};
}

}  // namespace

AlgorithmRegistration mime_registration() { return registration(false); }
AlgorithmRegistration mimelite_registration() { return registration(true); }

MimeAlgorithm::MimeAlgorithm(std::uint64_t seed, FedAvgOptions o, bool lite, double beta,
                             std::int64_t grad_batch, std::int64_t num_params)
    : seed_(seed),
      o_(std::move(o)),
      lite_(lite),
      beta_(beta),
      grad_batch_(grad_batch),
      d_(num_params),
      y_(static_cast<std::size_t>(num_params)),
      grad_(static_cast<std::size_t>(num_params)) {
  if (!lite_) grad_x_.resize(static_cast<std::size_t>(num_params));
}

void MimeAlgorithm::anchor_gradient(Problem& problem, int c, std::uint32_t round, const float* x,
                                    float* out) {
  const auto client = static_cast<std::uint32_t>(c);
  BatchStream batches(problem.client_samples(c), grad_batch_,
                      Rng(seed_, round, client, Purpose::kControlBatches));
  Rng noise(seed_, round, client, Purpose::kControlNoise);
  problem.loss_grad(c, x, batches.next(), out, noise);
  o_.gradient.apply(out, x, d_);
}

void MimeAlgorithm::take_anchor(float* state, const float* mean_gradient) const {
  std::copy_n(mean_gradient, d_, state + d_);
}

ClientResult MimeAlgorithm::client_message(Problem& problem, int c, std::uint32_t round,
                                           const float* x, float* message) {
  const std::int64_t d = d_;
  if (d > 0 && state_ == nullptr) throw std::logic_error("mime: client_message before begin_round");
  const float* m = state_;
  const float* mean_grad = state_ == nullptr ? nullptr : state_ + d;
  auto [batches, noise, steps, lr] = LocalRound(o_, problem, seed_, c, round);
  std::copy_n(x, d, y_.data());
  double loss_sum = 0;
  for (std::int64_t k = 0; k < steps; ++k) {
    if (abandon_local_work()) break;  // the round is dropped (Note [Stopping mid-round])
    const auto batch = batches.next();
    Rng same_noise = noise;  // mime: the same minibatch (and data noise) at x as at y
    loss_sum += problem.loss_grad(c, y_.data(), batch, grad_.data(), noise);
    o_.gradient.apply(grad_.data(), y_.data(), d);
    if (!lite_) {  // g <- g(y; z) - g(x; z) + c
      problem.loss_grad(c, x, batch, grad_x_.data(), same_noise);
      o_.gradient.apply(grad_x_.data(), x, d);
      for (std::int64_t i = 0; i < d; ++i) grad_[i] = grad_[i] - grad_x_[i] + mean_grad[i];
    }
    if (beta_ == 0) {  // fedavg's step exactly
      for (std::int64_t i = 0; i < d; ++i) y_[i] -= lr * grad_[i];
    } else {
      for (std::int64_t i = 0; i < d; ++i)
        y_[i] -= lr * static_cast<float>((1 - beta_) * grad_[i] + beta_ * m[i]);
    }
  }
  for (std::int64_t i = 0; i < d; ++i) message[i] = x[i] - y_[i];
  return ClientResult{loss_sum / static_cast<double>(steps), steps};
}

void MimeAlgorithm::server_update(float* state, const float*, double, int) const {
  // m <- (1 - beta) c + beta m, once per round.
  for (std::int64_t i = 0; i < d_; ++i)
    state[i] = static_cast<float>((1 - beta_) * state[d_ + i] + beta_ * state[i]);
}

}  // namespace cohort::algo
