#include "privacy/dp_sgd.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "core/errors.h"
#include "privacy/accountant.h"

namespace cohort::privacy {

std::vector<Option> dp_sgd_options() {
  return {opt_float("clip", 1.0, "clipping bound C of each example's gradient (.inf: none, with "
                                 "noise_multiplier 0)",
                    0, INFINITY, true),
          opt_float("noise_multiplier", 1.0,
                    "sigma: each step's noise on the sum of clipped gradients has standard "
                    "deviation sigma C",
                    0),
          opt_float("sample_rate", 0.01,
                    "q: each step samples each of the client's examples with probability q; "
                    "the step divides by q n (algorithm.batch_size is not used)",
                    0, 1, true),
          opt_float("delta", 1e-5, "delta of the reported (epsilon, delta)", 0, 1, true),
          opt_float("target_epsilon", INFINITY,
                    "privacy budget: the run stops (status budget_exhausted) before a round that "
                    "would exceed it; .inf: none",
                    0, INFINITY, true),
          opt_bool("calibrate", false,
                   "solve noise_multiplier before the run so that the configured rounds' steps "
                   "end at target_epsilon (which must be finite)")};
}

DpSgdOptions DpSgdOptions::from_config(const Config& cfg) {
  DpSgdOptions o;
  if (cfg.get_string("privacy.name") != "dp_sgd") return o;
  o.enabled = true;
  o.clip = cfg.get_float("privacy.clip");
  o.sigma = cfg.get_float("privacy.noise_multiplier");
  o.q = cfg.get_float("privacy.sample_rate");
  o.delta = cfg.get_float("privacy.delta");
  o.target = cfg.get_float("privacy.target_epsilon");
  o.calibrate = cfg.get_bool("privacy.calibrate");
  const std::string what = "privacy.name = dp_sgd";
  require_usage(o.q > 0 && o.q <= 1,
                fmt::format("privacy.sample_rate = {} is not allowed: the rate q must be in (0, 1]",
                            o.q));
  require_usage(o.clip > 0, fmt::format("privacy.clip = {} is not allowed: C must be > 0", o.clip));
  require_usage(o.delta > 0 && o.delta < 1,
                fmt::format("privacy.delta = {} is not allowed: delta must be in (0, 1)", o.delta));
  require_usage(o.target > 0, fmt::format("privacy.target_epsilon = {} is not allowed: it must be "
                                          "> 0",
                                          o.target));
  const std::string algorithm = cfg.get_string("algorithm.name");
  require_usage(algorithm == "fedavg" || algorithm == "fedprox" || algorithm == "sgd",
                what + " makes the clients' local steps private: algorithm.name must be fedavg, "
                       "fedprox or sgd, not " + algorithm);
  require_usage(cfg.get_string("data.name") != "quadratic",
                what + " clips per-example gradients: data.name = quadratic has no examples");
  require_usage(cfg.get_string("personalization.name") == "none",
                what + " protects the clients' messages only: personalization.name must be none");
  if (algorithm == "sgd") {
    o.steps_per_round = 1;
  } else if (cfg.get_int("algorithm.local_steps") > 0) {
    o.steps_per_round = cfg.get_int("algorithm.local_steps");
  } else {
    o.steps_per_round =
        cfg.get_int("algorithm.local_epochs") * static_cast<std::int64_t>(std::ceil(1 / o.q));
  }
  const std::int64_t steps = o.steps_per_round * cfg.get_int("rounds");
  if (o.calibrate) {
    require_usage(std::isfinite(o.target),
                  "privacy.calibrate = true needs a finite privacy.target_epsilon to calibrate to");
    require_usage(std::isfinite(o.clip),
                  "privacy.calibrate = true needs a finite privacy.clip: the noise is sigma C");
    o.sigma = calibrate_sigma(o.q, steps, o.delta, o.target);
  }
  require_usage(std::isfinite(o.clip) || o.sigma == 0,
                fmt::format("privacy.clip = .inf is allowed only with privacy.noise_multiplier = 0 "
                            "(the noise's standard deviation is sigma C), not {}",
                            o.sigma));
  return o;
}

double DpSgdOptions::epsilon_after(std::int64_t rounds) const {
  if (rounds <= 0) return 0.0;
  return epsilon(q, sigma, steps_per_round * rounds, delta).epsilon;
}

std::string DpSgdOptions::describe() const {
  if (!enabled) return "none";
  return fmt::format("dp_sgd: per-example clip C = {:g}, noise multiplier {:.6g}{}, Poisson "
                     "sample rate q = {:g} (denominator q n), {} steps per round, delta {:g}{}",
                     clip, sigma, calibrate ? " (calibrated)" : "", q, steps_per_round, delta,
                     std::isfinite(target) ? fmt::format(", target epsilon {:g}", target) : "");
}

DpSgdSteps::DpSgdSteps(const DpSgdOptions& o, std::uint64_t seed, std::uint32_t round, int client,
                       std::int64_t samples)
    : o_(o), n_(samples), denominator_(o.q * static_cast<double>(samples)),
      batches_(seed, round, static_cast<std::uint32_t>(client), Purpose::kDpSgdBatches),
      noise_(seed, round, static_cast<std::uint32_t>(client), Purpose::kDpSgdNoise) {}

std::span<const std::int64_t> DpSgdSteps::next_batch() {
  batch_.clear();
  if (o_.q >= 1) {
    batch_.resize(static_cast<std::size_t>(n_));
    std::iota(batch_.begin(), batch_.end(), std::int64_t{0});
    return batch_;
  }
  // The gap to the next sampled example is geometric: floor(log U / log(1 - q)) (as the client
  // sampling of Note [Poisson sampling]).
  const double log1q = std::log1p(-o_.q);
  std::int64_t pos = -1;
  for (;;) {
    const double skip = std::floor(std::log(batches_.uniform_open0()) / log1q);
    if (skip >= static_cast<double>(n_)) break;
    pos += static_cast<std::int64_t>(skip) + 1;
    if (pos >= n_) break;
    batch_.push_back(pos);
  }
  return batch_;
}

// Box-Muller on two uniforms of 53 bits each, as Rng::normal draws them; the second value is
// kept for the next call.
double DpSgdSteps::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  auto uniform = [this] {
    const std::uint64_t hi = noise_.next_u32();
    const std::uint64_t v = (hi << 32) | noise_.next_u32();
    return static_cast<double>(v >> 11) * 0x1.0p-53;
  };
  const double r = std::sqrt(-2.0 * std::log(1.0 - uniform()));
  const double t = 2.0 * 3.14159265358979323846 * uniform();
  spare_ = r * std::sin(t);
  has_spare_ = true;
  return r * std::cos(t);
}

void DpSgdSteps::add_noise(float* grad, std::int64_t d) {
  if (o_.sigma == 0) return;
  const double sd = o_.sigma * o_.clip / denominator_;
  for (std::int64_t i = 0; i < d; ++i) grad[i] = static_cast<float>(grad[i] + sd * normal());
}

}  // namespace cohort::privacy
