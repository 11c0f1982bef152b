// A federated problem: the clients' objectives over one flat parameter vector, plus the test
// set. Built from the config's data, partition and model sections; identical on every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/layers.h"
#include "core/registration.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "model/model.h"

namespace cohort::algo {

struct EvalSums {
  double loss_sum = 0.0;      // sum of per-sample losses on the chunk
  std::int64_t correct = 0;   // correct predictions (classification)
  std::int64_t count = 0;     // samples evaluated
  friend EvalSums operator+(const EvalSums& a, const EvalSums& b) {
    return {a.loss_sum + b.loss_sum, a.correct + b.correct, a.count + b.count};
  }
};

class Problem {
 public:
  virtual ~Problem() = default;
  virtual std::string description() const = 0;
  // The model's layers, shapes and sizes (model::Model::summary), printed at start-up.
  virtual std::string model_summary() const { return {}; }
  virtual int num_clients() const = 0;
  std::int64_t num_params() const;
  virtual const std::vector<LayerView>& layers() const = 0;
  // Number of samples client c holds (its weight in a weighted mean).
  virtual std::int64_t client_samples(int c) const = 0;
  // The initial model from the run seed; `variant` v > 0 draws another one from the same seed
  // (ifca's cluster models 1..k-1), keyed (seed, v, kGlobalClient, kModelInit).
  virtual void init(float* x, std::uint64_t seed, std::uint32_t variant = 0) const = 0;
  // Mean loss of client c on the samples at `positions` (indices into the client's own sample
  // list, 0..client_samples(c)-1) and its gradient (overwritten). rng, the client's keyed stream
  // for this local work, serves stochastic objectives (gradient noise) and dropout masks.
  virtual double loss_grad(int c, const float* x, std::span<const std::int64_t> positions,
                           float* grad, Rng& rng) = 0;
  // dp_sgd's step (Note [Per-example clipping] in model/model.h): on the same samples as
  // loss_grad, the gradient of sum_n min(1, clip / |g_n|) L_n / denominator; returns the mean
  // loss. Problems without per-sample losses (quadratic) throw std::logic_error: the privacy
  // options refuse them first.
  virtual double clipped_loss_grad(int c, const float* x, std::span<const std::int64_t> positions,
                                   double clip, double denominator, float* grad, Rng& rng);
  // The inference attacks (privacy/inference.h, `cohort attack-privacy`): the features of client
  // c's training sample at `position`; its evaluation-pass loss at x; the test set's row count
  // and the evaluation-pass loss of test row `row`. Problems without samples (quadratic) throw
  // std::logic_error: the command refuses them first.
  virtual std::vector<float> sample_input(int c, std::int64_t position);
  virtual double sample_loss(int c, std::int64_t position, const float* x);
  virtual std::int64_t test_rows() const { return 0; }
  virtual double test_loss(std::int64_t row, const float* x);
  // F_c(x): client c's mean loss over all its training samples, an evaluation pass (no dropout,
  // no gradient noise). qffl weights clients by it and ifca's clients pick their cluster by it.
  virtual double client_loss(int c, const float* x) = 0;
  // Note [Client test sets] (algo/problem.cpp): whether every client holds a local test set
  // (data.client_test_fraction > 0), and client c's evaluation on it at x.
  virtual bool has_client_tests() const { return false; }
  virtual std::int64_t client_test_samples(int) const { return 0; }
  virtual EvalSums evaluate_client(int c, const float* x);
  // Prepares n workers (Note [Client threads] in core/worker_pool.h): afterwards loss_grad and
  // evaluate_chunk may run on n threads at once, for different clients and chunks, each with
  // its own scratch, chosen by WorkerPool::current_worker(). Problems without scratch need
  // nothing.
  virtual void set_workers(int) {}
  // Test-set evaluation in fixed chunks, so that the result does not depend on which rank
  // evaluates which chunk.
  virtual std::int64_t num_eval_chunks() const = 0;
  virtual EvalSums evaluate_chunk(const float* x, std::int64_t chunk) = 0;
  virtual bool has_accuracy() const = 0;
  // The server's validation loss at y (zeno): mean loss on `batch` test rows drawn from the
  // (seed, round, kAggregation) stream; the full objective for problems without data.
  virtual double server_loss(const float* y, std::uint64_t seed, std::uint32_t round,
                             int batch) = 0;
  // Extra metrics computed on every evaluation (e.g. distance to the optimum), in the order of
  // extra_metric_names(); rounds without evaluation record NaN for them.
  virtual std::vector<std::string> extra_metric_names() const { return {}; }
  virtual std::vector<double> extra_metrics(const float*) const { return {}; }
  // labelflip: these clients train on labels y -> C-1-y. UsageError without class labels.
  virtual void set_label_flip(const std::vector<int>& clients);
  // Sample counts of all clients.
  std::vector<std::int64_t> sample_counts() const;
};

// A data source as the problem sees it (Note [Registration]): the datasets of data/loaders.h,
// which the problem completes with a partition and a model, and the quadratic clients, which
// define their own objective.
using ProblemRegistration = Registration<std::unique_ptr<Problem>(const Config& cfg)>;

// The data slot's list (with the partition slot of data/partition.h as its child) and the model
// slot's list, and their schemas.
const std::vector<ProblemRegistration>& data_sources();
Section data_section();
const std::vector<model::ModelRegistration>& models();
Section model_section();

// Builds the problem named by the config (data + partition + model). Throws UsageError for
// impossible combinations (e.g. dirichlet on regression data, linear model on class labels).
std::unique_ptr<Problem> make_problem(const Config& cfg);

}  // namespace cohort::algo
