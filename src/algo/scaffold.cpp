#include "algo/scaffold.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "algo/interrupt.h"
#include "core/errors.h"

namespace cohort::algo {

void require_plain_mean(const Config& cfg, const std::string& what) {
  const std::string rule = cfg.get_string("aggregator.name");
  require_usage(rule == "mean" && !cfg.get_bool("aggregator.weighted"),
                what +
                    " needs aggregator.name = mean with aggregator.weighted = false (its "
                    "server statistics are unweighted means over the sampled clients); got " +
                    (rule == "mean" ? std::string("aggregator.weighted = true")
                                    : "aggregator.name = " + rule));
  require_usage(cfg.get_string("attack.name") == "none",
                what + " runs without attacks (attack.name = none); got attack.name = " +
                    cfg.get_string("attack.name"));
  require_usage(cfg.get_float("algorithm.client_momentum") == 0,
                what +
                    " sends more than a model update, which worker momentum is not defined "
                    "on: set algorithm.client_momentum = 0");
}

AlgorithmRegistration scaffold_registration() {
  auto options = local_step_options(false);
  options.push_back(opt_enum("option", "II", {"I", "II"},
                             "the client control update: II: c_i <- c_i - c + (x - y_K) / "
                             "(K eta_l); I: c_i <- g(x), a minibatch gradient at x"));
  return {"scaffold",
          "local steps corrected by control variates, y <- y - eta_l (g - c_i + c); sends "
          "x - y_K and the change of c_i",
          std::move(options), [](const Config& cfg, std::int64_t num_params) {
            require_plain_mean(cfg, "algorithm.name = scaffold");
            return std::make_unique<ScaffoldAlgorithm>(
                static_cast<std::uint64_t>(cfg.get_int("seed")),
                FedAvgOptions::steps_from_config(cfg), cfg.get_string("algorithm.option") == "I",
                num_params);
          }};
}

ScaffoldAlgorithm::ScaffoldAlgorithm(std::uint64_t seed, FedAvgOptions o, bool option_one,
                                     std::int64_t num_params)
    : seed_(seed),
      o_(std::move(o)),
      option_one_(option_one),
      d_(num_params),
      y_(static_cast<std::size_t>(num_params)),
      grad_(static_cast<std::size_t>(num_params)),
      next_control_(static_cast<std::size_t>(num_params)) {}

void ScaffoldAlgorithm::declare_state(ClientStore& store) {
  store_ = &store;
  control_ = store.slot("control");  // declared by another thread's instance
  if (control_ == ClientStore::kNone) control_ = store.declare("control", "control variate", d_);
}

ClientResult ScaffoldAlgorithm::client_message(Problem& problem, int c, std::uint32_t round,
                                               const float* x, float* message) {
  const std::int64_t d = d_;
  if (d > 0 && (control_ == ClientStore::kNone || server_control_ == nullptr))
    throw std::logic_error("scaffold: client_message without declare_state and begin_round");
  const auto client = static_cast<std::uint32_t>(c);
  float* ci = d > 0 ? store_->row(control_, c).data() : nullptr;
  const float* cs = server_control_;
  if (option_one_) {  // c_i+ = g(x) on one minibatch of the control streams
    BatchStream batches(problem.client_samples(c), o_.batch_size,
                        Rng(seed_, round, client, Purpose::kControlBatches));
    Rng noise(seed_, round, client, Purpose::kControlNoise);
    problem.loss_grad(c, x, batches.next(), next_control_.data(), noise);
    o_.gradient.apply(next_control_.data(), x, d);
  }
  auto [batches, noise, steps, lr] = LocalRound(o_, problem, seed_, c, round);
  std::copy_n(x, d, y_.data());
  double loss_sum = 0;
  std::int64_t k = 0;
  for (; k < steps; ++k) {
    if (abandon_local_work()) break;  // the round is dropped (Note [Stopping mid-round])
    loss_sum += problem.loss_grad(c, y_.data(), batches.next(), grad_.data(), noise);
    o_.gradient.apply(grad_.data(), y_.data(), d);
    for (std::int64_t i = 0; i < d; ++i) y_[i] -= lr * (grad_[i] - ci[i] + cs[i]);
  }
  if (k < steps) return ClientResult{loss_sum / static_cast<double>(steps), steps};  // dropped
  if (!option_one_) {  // c_i+ = c_i - c + (x - y_K) / (K eta_l)
    const double scale = 1.0 / (static_cast<double>(steps) * static_cast<double>(lr));
    for (std::int64_t i = 0; i < d; ++i)
      next_control_[i] = static_cast<float>(static_cast<double>(ci[i]) - cs[i] +
                                            (static_cast<double>(x[i]) - y_[i]) * scale);
  }
  for (std::int64_t i = 0; i < d; ++i) {
    message[i] = x[i] - y_[i];
    message[d + i] = next_control_[i] - ci[i];
    ci[i] = next_control_[i];
  }
  return ClientResult{loss_sum / static_cast<double>(steps), steps};
}

void ScaffoldAlgorithm::server_update(float* state, const float* parts, double senders,
                                      int population) const {
  const double share = senders / static_cast<double>(population);  // |S| / N
  for (std::int64_t i = 0; i < d_; ++i) state[i] = static_cast<float>(state[i] + share * parts[i]);
}

}  // namespace cohort::algo
