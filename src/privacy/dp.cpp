#include "privacy/dp.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/registration.h"
#include "privacy/accountant.h"

namespace cohort::privacy {

Section privacy_section() {
  using R = Registration<void()>;
  static const std::vector<R> list = {
      {"none", "no differential privacy", {}, {}},
      {"dp_fedavg",
       "user-level DP-FedAvg: clip each client's update to C, add Gaussian noise sigma C to the "
       "sum, divide by q N (Poisson sampling; Note [DP-FedAvg])",
       {opt_float("clip", 1.0, "clipping bound C of a client's update", 0, INFINITY, true),
        opt_float("noise_multiplier", 1.0, "sigma: the noise's standard deviation is sigma C",
                  0),
        opt_enum("clip_scope", "flat", {"flat", "layer"},
                 "flat: the whole update to norm C; layer: each of the L layers to C/sqrt(L)"),
        opt_enum("noise", "central", {"central", "distributed"},
                 "central: the server adds N(0, sigma^2 C^2) to the sum; distributed: each of the "
                 "m sampled clients adds N(0, sigma^2 C^2 / m)"),
        opt_float("delta", 1e-5, "delta of the reported (epsilon, delta)", 0, 1, true),
        opt_float("target_epsilon", INFINITY,
                  "privacy budget: the run stops (status budget_exhausted) before a round that "
                  "would exceed it; .inf: none",
                  0, INFINITY, true),
        opt_bool("calibrate", false,
                 "solve noise_multiplier before the run so that the configured rounds end at "
                 "target_epsilon (which must be finite)")},
       {}},
      {"dp_sgd",
       "sample-level DP-SGD: every local step clips each example's gradient to C, adds Gaussian "
       "noise sigma C and divides by q n (Poisson sampling of examples; Note [DP-SGD])",
       dp_sgd_options(),
       {}},
  };
  return slot_section("privacy", "Differential privacy (docs/algorithms.md §6).", "none", list);
}

DpOptions DpOptions::from_config(const Config& cfg, int population) {
  DpOptions o;
  if (cfg.get_string("privacy.name") == "dp_sgd") {
    o.sgd = DpSgdOptions::from_config(cfg);
    o.clip = o.sgd.clip;
    o.sigma = o.sgd.sigma;
    o.delta = o.sgd.delta;
    o.target = o.sgd.target;
    o.calibrate = o.sgd.calibrate;
    return o;
  }
  if (cfg.get_string("privacy.name") != "dp_fedavg") return o;
  o.enabled = true;
  o.population = population;
  o.clip = cfg.get_float("privacy.clip");
  o.sigma = cfg.get_float("privacy.noise_multiplier");
  o.per_layer = cfg.get_string("privacy.clip_scope") == "layer";
  o.distributed = cfg.get_string("privacy.noise") == "distributed";
  o.delta = cfg.get_float("privacy.delta");
  o.target = cfg.get_float("privacy.target_epsilon");
  o.calibrate = cfg.get_bool("privacy.calibrate");
  o.q = cfg.get_float("clients.fraction");
  const std::string what = "privacy.name = dp_fedavg";
  require_usage(o.delta < 1, fmt::format("privacy.delta = {} is not allowed: delta must be in "
                                         "(0, 1)",
                                         o.delta));
  const std::string algorithm = cfg.get_string("algorithm.name");
  require_usage(algorithm == "fedavg" || algorithm == "fedprox",
                what + " clips each client's update x - y_i: algorithm.name must be fedavg or "
                       "fedprox, not " + algorithm);
  require_usage(cfg.get_string("clients.sampling") == "poisson",
                what + " is accounted as the sampled Gaussian mechanism, which needs each client "
                       "sampled independently: set clients.sampling = poisson (with "
                       "clients.fraction = q)");
  require_usage(cfg.get_string("compressor.name") == "none" &&
                    cfg.get_string("downlink_compressor.name") == "none",
                what + " bounds the exact clipped updates: compressor.name and "
                       "downlink_compressor.name must be none");
  require_usage(cfg.get_string("aggregator.name") == "mean" && !cfg.get_bool("aggregator.weighted"),
                what + " divides the sum of clipped updates by q N: aggregator.name must be mean "
                       "with weighted = false");
  require_usage(cfg.get_float("algorithm.client_momentum") == 0,
                what + " clips the update itself: algorithm.client_momentum must be 0");
  require_usage(cfg.get_string("personalization.name") == "none",
                what + " protects the global model only: personalization.name must be none");
  if (o.calibrate) {
    require_usage(std::isfinite(o.target),
                  "privacy.calibrate = true needs a finite privacy.target_epsilon to calibrate to");
    o.sigma = calibrate_sigma(o.q, cfg.get_int("rounds"), o.delta, o.target);
  }
  return o;
}

double DpOptions::epsilon_after(std::int64_t rounds) const {
  if (sgd.enabled) return sgd.epsilon_after(rounds);
  if (rounds <= 0) return 0.0;
  return epsilon(q, sigma, rounds, delta).epsilon;
}

std::string DpOptions::describe() const {
  if (sgd.enabled) return sgd.describe();
  if (!enabled) return "none";
  return fmt::format("dp_fedavg: clip C = {:g} ({}), noise multiplier {:.6g}{} ({}), Poisson q = "
                     "{:g}, denominator q N = {:g}, delta {:g}{}",
                     clip, per_layer ? "per layer" : "flat", sigma, calibrate ? " (calibrated)" : "",
                     distributed ? "distributed" : "central", q, denominator(), delta,
                     std::isfinite(target) ? fmt::format(", target epsilon {:g}", target) : "");
}

void clip_update(float* u, const std::vector<LayerView>& layers, double clip, bool per_layer) {
  auto clip_span = [](float* v, std::int64_t n, double bound) {
    double sq = 0;
    for (std::int64_t i = 0; i < n; ++i) sq += static_cast<double>(v[i]) * v[i];
    const double norm = std::sqrt(sq);
    if (norm > bound) {
      const double scale = bound / norm;
      for (std::int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(v[i] * scale);
    }
  };
  if (!per_layer) {
    const std::int64_t d = layers.empty() ? 0 : layers.back().offset + layers.back().size();
    clip_span(u, d, clip);
    return;
  }
  const double bound = clip / std::sqrt(static_cast<double>(layers.size()));
  for (const LayerView& l : layers) clip_span(u + l.offset, l.size(), bound);
}

}  // namespace cohort::privacy
