// mime and mimelite: local steps that apply the server's momentum, frozen for the round
// (docs/algorithms.md §1.1).
#pragma once

#include <vector>

#include "algo/algorithm.h"
#include "algo/fedavg.h"

namespace cohort::algo {

// Before its local work each sampled client sends its gradient at x (the full data, or
// grad_batch samples); their mean c is known to every client before the local steps (Note
// [Anchor gradients] in algo/algorithm.h). Client i then takes K steps
// y <- y - eta_l ((1 - beta) g_k + beta m), with m the server momentum of the previous round and
// g_k = g(y; z) - g(x; z) + c (mime, the same minibatch z at y and x) or g(y; z) (mimelite), and
// sends x - y_K. The server steps x <- x - eta_s mean(x - y_K) (server optimizer sgd), then
// m <- (1 - beta) c + beta m. The server state is [m, c]: m carried between rounds, c this
// round's mean gradient at x.
class MimeAlgorithm final : public Algorithm {
 public:
  MimeAlgorithm(std::uint64_t seed, FedAvgOptions o, bool lite, double beta,
                std::int64_t grad_batch, std::int64_t num_params);
  std::string name() const override { return lite_ ? "mimelite" : "mime"; }
  ClientResult client_message(Problem& problem, int c, std::uint32_t round, const float* x,
                              float* message) override;
  double local_lr(std::uint32_t round) const override { return o_.schedule.at(round); }
  std::int64_t server_state_size() const override { return 2 * d_; }
  // mimelite's clients read m alone; mime's read m and c.
  std::int64_t server_state_sent() const override { return lite_ ? d_ : 2 * d_; }
  bool needs_anchor() const override { return true; }
  void anchor_gradient(Problem& problem, int c, std::uint32_t round, const float* x,
                       float* out) override;
  void take_anchor(float* state, const float* mean_gradient) const override;
  void begin_round(const float* server_state) override { state_ = server_state; }
  void server_update(float* state, const float* parts, double senders,
                     int population) const override;

 private:
  std::uint64_t seed_;
  FedAvgOptions o_;
  bool lite_;
  double beta_;
  std::int64_t grad_batch_, d_;
  std::vector<float> y_, grad_, grad_x_;
  const float* state_ = nullptr;  // [m, c] of the round
};

// Their options, schema entries and factories (Note [Registration]).
AlgorithmRegistration mime_registration();
AlgorithmRegistration mimelite_registration();

}  // namespace cohort::algo
