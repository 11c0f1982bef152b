// Sample-level differential privacy of the clients' local steps (docs/algorithms.md §6):
// DP-SGD, accounted with the RDP accountant of privacy/accountant.h.
//
// Note [DP-SGD]
// privacy.name = dp_sgd (Abadi et al. 2016). The privacy unit is one example of one client.
// Every local step of a client (fedavg and fedprox: K per round; sgd: its one gradient) draws its
// batch by Poisson sampling, each of the client's n examples independently with probability
// q = privacy.sample_rate (so algorithm.batch_size is not used), from the client's
// (seed, round, client, kDpSgdBatches) stream; clips each example's gradient g_j to norm C by
// g_j min(1, C/|g_j|) (Note [Per-example clipping] in model/model.h); adds N(0, sigma^2 C^2 I)
// from the (seed, round, client, kDpSgdNoise) stream; and divides by B = q n, the expected batch
// size, not the realised one. The step is then the algorithm's own (weight decay, fedprox's
// term, local momentum: post-processing of the noisy gradient). A round takes K steps, K =
// algorithm.local_steps, or algorithm.local_epochs ceil(1/q) when that is 0 (one epoch is 1/q
// expected batches), or 1 for sgd.
// Accounting: each step is the sampled Gaussian mechanism at rate q on the client's examples;
// an example takes part in at most the K steps of each round its client trains in, so after t
// rounds /rounds/epsilon holds epsilon(q, sigma, K t, delta). This assumes the client trains in
// every round: client sampling (clients.fraction) would amplify privacy further and is
// conservatively ignored. The clients' sample counts n (hence B) are treated as public, as the
// dataset size is in Abadi et al.; everything after the local steps (compression, aggregation,
// the server step) is post-processing. target_epsilon and calibrate act as for dp_fedavg, on
// K t steps.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/rng.h"
#include "core/schema.h"
#include "compress/philox_bulk.h"

namespace cohort::privacy {

struct DpSgdOptions {
  bool enabled = false;            // privacy.name = dp_sgd
  double clip = 1;                 // C (infinity: no clipping, only with sigma = 0)
  double sigma = 1;                // noise multiplier (after calibration)
  double q = 0.01;                 // sample_rate: each example's inclusion probability
  double delta = 1e-5;
  double target = INFINITY;        // target_epsilon
  bool calibrate = false;
  std::int64_t steps_per_round = 1;  // K
  // The privacy.* keys of dp_sgd and their checks against the rest of the config (UsageError
  // naming the key); calibrates sigma when asked. Disabled for any other privacy.name.
  static DpSgdOptions from_config(const Config& cfg);
  // epsilon(delta) after `rounds` rounds: K rounds steps of the sampled Gaussian at (q, sigma).
  double epsilon_after(std::int64_t rounds) const;
  std::string describe() const;
};

// dp_sgd's keys in the privacy slot (privacy_section in privacy/dp.cpp).
std::vector<Option> dp_sgd_options();

// One client's DP-SGD steps in one round (Note [DP-SGD]): its batches and its noise, both keyed
// by (seed, round, client), so a client draws the same on any rank and thread.
class DpSgdSteps {
 public:
  DpSgdSteps(const DpSgdOptions& o, std::uint64_t seed, std::uint32_t round, int client,
             std::int64_t samples);
  // Positions (0..samples-1, ascending) of the next step's Poisson sample; may be empty.
  std::span<const std::int64_t> next_batch();
  // B = q n, the expected batch size.
  double denominator() const { return denominator_; }
  // grad (d floats) += N(0, (sigma C / B)^2) in every coordinate; nothing when sigma = 0.
  void add_noise(float* grad, std::int64_t d);

 private:
  const DpSgdOptions& o_;
  std::int64_t n_;
  double denominator_;
  Rng batches_;
  // One Gaussian per parameter and step: the stream's words come in bulk (Note [Bulk Philox]),
  // exactly Rng(seed, round, client, kDpSgdNoise)'s, and normal() turns them into Gaussians.
  compress::BulkRng noise_;
  double normal();
  double spare_ = 0;
  bool has_spare_ = false;
  std::vector<std::int64_t> batch_;
};

}  // namespace cohort::privacy
