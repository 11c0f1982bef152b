// One round of a run (docs/architecture.md "The round"): RunState after t rounds -> RunState
// after t + 1 rounds, and the round's measurements.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "algo/run_state.h"
#include "algo/schedule.h"
#include "comm/communicator.h"
#include "core/config.h"
#include "metrics/round_recorder.h"
#include "privacy/secagg.h"

namespace cohort::algo {

// The distribution of per-client accuracies (docs/algorithms.md §8).
struct ClientAccuracyStats {
  double mean = NAN, std = NAN, p10 = NAN, p50 = NAN, p90 = NAN, min = NAN;
};
ClientAccuracyStats client_accuracy_stats(const std::vector<float>& accuracies);

class Round {
 public:
  // The config's constants a round needs (seed, weighting, evaluation schedule, ...).
  Round(const Config& cfg, comm::Communicator& comm);

  struct Result {
    // The round was interrupted during its local phase on some rank and dropped on every rank
    // (Note [Stopping mid-round] in algo/runner.cpp): the state is no longer usable and the
    // runner restores the one it kept. Only possible when may_abandon was true.
    bool abandoned = false;
    metrics::RoundRecord record;
    // Reduced over ranks: the slowest rank's local phase and cost of keeping the start state.
    double local_max = 0, keep_cost_max = 0;
  };
  // Collective: runs round s.round + 1 and advances s.round. keep_cost: seconds this rank spent
  // keeping the round's start state (reported with the phase times).
  Result execute(RunState& s, bool may_abandon, double keep_cost);

  // The per-client accuracies of the last evaluation of the clients (eval.clients), in client
  // order: with the model each client uses, and with the global model (personal models only;
  // empty otherwise). Empty before the first such evaluation.
  const std::vector<float>& client_accuracy() const { return client_acc_; }
  const std::vector<float>& global_client_accuracy() const { return global_client_acc_; }

 private:
  // Whether round t (0-based) evaluates: every eval.every rounds, the last, never diverged.
  bool evaluates(long long t, const metrics::RoundRecord& rec) const;
  // Collective: the evaluated model on the test set into rec (test loss, accuracy, the
  // problem's extra metrics, the objective with eval.l2): x, or x̄ under iterate averaging (Note
  // [Iterate averaging] in algo/averaging.h).
  void evaluate_test_set(RunState& s, bool evaluate, metrics::RoundRecord& rec);
  // Collective: the phase times' min / avg / max over ranks into res.
  void record_phases(const double phase[4], double keep_cost, Result& res);
  // Note [Decentralized rounds] (decentral/network.h): a round of a decentralized run.
  Result execute_decentralized(RunState& s, double keep_cost);
  // Note [Per-client evaluation] (round.cpp): fills client_acc_ (and global_client_acc_).
  void evaluate_clients(RunState& s, std::uint32_t round, int k_clusters, bool with_global);

  comm::Communicator& comm_;
  std::uint64_t seed_;
  long long rounds_, eval_every_;
  bool weighted_, selecting_rule_;
  bool qffl_ = false;         // aggregator qffl (Note [q-FFL] in round.cpp)
  bool poisson_ = false;      // clients.sampling = poisson (Note [Poisson sampling])
  double q_sampling_ = 1;
  double q_ = 0;
  bool client_eval_ = false;  // eval.clients
  long long nodes_every_ = 0;  // eval.nodes_every
  double l2_ = 0;              // eval.l2: the objective's regularisation
  std::vector<float> averaged_;  // x̄ for evaluation (Note [Iterate averaging])
  int zeno_batch_;
  LrSchedule server_lr_;  // server_optimizer.lr_schedule (Note [Schedules of the round])
  std::vector<std::vector<float>> msgs_;  // one message per client thread
  std::vector<ClientResult> results_;     // and its client's result
  std::vector<double> losses_;            // qffl: F_c(x) of the window's clients
  std::vector<double> personal_loss_;     // ditto: the personal steps' mean loss
  std::vector<int> picks_;                // ifca: the cluster each window's client picked
  std::vector<std::vector<float>> eval_models_;  // per client thread: a personal model
  std::vector<float> client_acc_, global_client_acc_;
  std::vector<float> g_;
  std::vector<std::int64_t> counts_;  // clients' sample counts (weighted mean only)
  // Note [Secure aggregation] (privacy/secagg.h): the options, and the protocol once d is known.
  privacy::SecaggOptions secagg_options_;
  std::unique_ptr<privacy::SecureAggregation> secagg_;
};

}  // namespace cohort::algo
