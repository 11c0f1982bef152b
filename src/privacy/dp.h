// Differential privacy of federated runs (docs/algorithms.md §6): DP-FedAvg with the RDP
// accountant of privacy/accountant.h.
//
// Note [DP-FedAvg]
// privacy.name = dp_fedavg (user-level DP, McMahan et al. 2018). Clients are sampled by Poisson
// sampling with rate q = clients.fraction (clients.sampling = poisson, which the accountant's
// sampled Gaussian mechanism assumes; uniform sampling without replacement is refused rather than
// mis-accounted). Each sampled client's update u_i = x - y_i is clipped to norm C (flat), or each
// of its L layers to C / sqrt(L) (clip_scope = layer); the server adds N(0, sigma^2 C^2 I) to the
// sum of the clipped updates (noise = central: one draw from the (seed, round, kPrivacyNoise)
// stream, the same on every rank) and divides by the expected number of clients q N, a fixed
// denominator, so one client changes the aggregate by at most C / (q N) whatever the round's
// sample. noise = distributed: each sampled client adds N(0, sigma^2 C^2 / m I) to its clipped
// update (m the round's number of sampled clients, from its own stream), so the sum carries the
// same noise without any party adding it alone. The round's ε(δ) after t rounds is recorded as
// /rounds/epsilon; target_epsilon stops the run before a round that would exceed it (status
// budget_exhausted), or, with calibrate, sets sigma before the run so that the configured rounds
// end exactly within it.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/layers.h"
#include "core/schema.h"
#include "privacy/dp_sgd.h"

namespace cohort::privacy {

struct DpOptions {
  bool enabled = false;      // privacy.name = dp_fedavg
  double clip = 0;           // C
  double sigma = 0;          // noise multiplier (after calibration)
  bool per_layer = false;    // clip_scope = layer
  bool distributed = false;  // noise = distributed
  double delta = 1e-5;
  double target = INFINITY;  // target_epsilon
  bool calibrate = false;
  double q = 1;              // the Poisson sampling rate
  int population = 0;        // N
  // privacy.name = dp_sgd (Note [DP-SGD]): the clients clip and noise their own steps; clip,
  // sigma, delta, target and calibrate above then hold dp_sgd's.
  DpSgdOptions sgd;
  // Whether the run is accounted (/rounds/epsilon, the budget): dp_fedavg or dp_sgd.
  bool accounted() const { return enabled || sgd.enabled; }
  double denominator() const { return q * population; }
  // The privacy.* keys and their checks against the rest of the config (UsageError naming the
  // key); calibrates sigma when asked. N: the population.
  static DpOptions from_config(const Config& cfg, int population);
  // epsilon(delta) after `rounds` rounds.
  double epsilon_after(std::int64_t rounds) const;
  std::string describe() const;
};

Section privacy_section();

// Clips u (d values, split into `layers`) in place: to norm C, or each layer to C / sqrt(L).
// Norms are double sums in index order.
void clip_update(float* u, const std::vector<LayerView>& layers, double clip, bool per_layer);

}  // namespace cohort::privacy
