// Client-side algorithms: what a sampled client computes from the global model each round
// (docs/algorithms.md §1). Registered in algorithms() (one explicit list, Note [Registration]).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algo/problem.h"
#include "core/client_store.h"
#include "core/config.h"
#include "core/registration.h"

namespace cohort::algo {

struct ClientResult {
  double train_loss = 0.0;  // mean minibatch loss over the client's local steps
  std::int64_t steps = 0;
};

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual std::string name() const = 0;
  // Writes client c's uncompressed message u_c for round `round` (num_params floats) at the
  // global model x. All randomness comes from (seed, round, c, purpose) streams.
  virtual ClientResult client_message(Problem& problem, int c, std::uint32_t round,
                                      const float* x, float* message) = 0;
  // Declares the per-client state the algorithm keeps between rounds (Note [Client store]);
  // called once per instance when the run is built, before any client_message. The instances of
  // the client threads (Note [Client threads]) share the store's slots: the first declares a
  // slot, the others find it (ClientStore::slot).
  virtual void declare_state(ClientStore&) {}
  // The local learning rate of round `round` (recorded as /rounds/local_lr), or NaN for an
  // algorithm without one.
  virtual double local_lr(std::uint32_t /*round*/) const { return NAN; }
};

// What a client does to a minibatch gradient before using it (docs/algorithms.md §1.1): clip it
// to norm at most clip_norm (0: off), then add weight_decay times the point it was taken at.
struct GradientOptions {
  double weight_decay = 0;  // lambda
  double clip_norm = 0;     // c; 0: no clipping
  // algorithm.weight_decay and algorithm.clip_norm, which every algorithm's clients apply.
  static GradientOptions from_config(const Config& cfg);
  // g <- clip(g) + lambda y over d values. The norm is a double sum in index order, so it does
  // not depend on anything but the values.
  void apply(float* g, const float* y, std::int64_t d) const;
};

// An algorithm's schema entry and its factory, which reads the algorithm.* keys it declares.
using AlgorithmRegistration =
    Registration<std::unique_ptr<Algorithm>(const Config& cfg, std::int64_t num_params)>;

const std::vector<AlgorithmRegistration>& algorithms();
// The algorithm slot's schema, with the worker momentum every algorithm's clients may apply.
Section algorithm_section();
std::unique_ptr<Algorithm> make_algorithm(const Config& cfg, std::int64_t num_params);

// The minibatches a client walks through: reshuffled epochs over its samples, cut into batches
// of B (the last batch of an epoch may be smaller). B = 0 or B >= n gives the full batch in
// natural order every step.
class BatchStream {
 public:
  BatchStream(std::int64_t n, std::int64_t batch_size, Rng rng);
  // Positions (0..n-1) of the next minibatch.
  std::span<const std::int64_t> next();
  std::int64_t batches_per_epoch() const { return (n_ + b_ - 1) / b_; }

 private:
  std::int64_t n_, b_, pos_;
  bool full_;
  Rng rng_;
  std::vector<std::int64_t> order_;
};

}  // namespace cohort::algo
