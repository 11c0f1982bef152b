// scaffold: local SGD steps corrected by control variates (docs/algorithms.md §1.1).
#pragma once

#include <vector>

#include "algo/algorithm.h"
#include "algo/fedavg.h"

namespace cohort::algo {

// Client i starts at y = x and takes K steps y <- y - eta_l (g(y) - c_i + c), with c the
// server control (frozen for the round) and c_i its own control (slot "control", zeros before
// its first participation). Its new control is c_i+ = c_i - c + (x - y_K) / (K eta_l)
// (option II) or g(x) on one minibatch of its own stream (option I). The message has two parts
// (Note [Message parts]): x - y_K, and c_i+ - c_i under "dc/"; the server moves x with the first
// (server_optimizer sgd at lr eta_g: x <- x - eta_g mean(x - y_K)) and sets
// c <- c + (|S| / N) mean(c_i+ - c_i).
class ScaffoldAlgorithm final : public Algorithm {
 public:
  ScaffoldAlgorithm(std::uint64_t seed, FedAvgOptions o, bool option_one, std::int64_t num_params);
  std::string name() const override { return "scaffold"; }
  ClientResult client_message(Problem& problem, int c, std::uint32_t round, const float* x,
                              float* message) override;
  void declare_state(ClientStore& store) override;
  double local_lr(std::uint32_t round) const override { return o_.schedule.at(round); }
  std::vector<std::string> message_part_names() const override { return {"", "dc"}; }
  std::int64_t server_state_size() const override { return d_; }
  void begin_round(const float* server_state) override { server_control_ = server_state; }
  void server_update(float* state, const float* parts, double senders,
                     int population) const override;

 private:
  std::uint64_t seed_;
  FedAvgOptions o_;
  bool option_one_;
  std::int64_t d_;
  std::vector<float> y_, grad_, next_control_;
  const float* server_control_ = nullptr;
  ClientStore* store_ = nullptr;
  ClientStore::Slot control_ = ClientStore::kNone;
};

// Its options, schema entry and factory (Note [Registration]).
AlgorithmRegistration scaffold_registration();

// Usage errors for what an algorithm with a multi-part message (Note [Message parts]) or with
// server statistics cannot be combined with: an aggregator other than the unweighted mean, an
// attack, worker momentum. `what` names the algorithm and why, e.g. "algorithm.name = scaffold".
void require_plain_mean(const Config& cfg, const std::string& what);

}  // namespace cohort::algo
