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

// Note [Message parts]
// Most algorithms send one d-vector. An algorithm that must also report something to its own
// server state (scaffold's control change) sends P parts of d values each, concatenated, and
// names them (message_part_names(): "" for part 0, then a prefix per part). The run hands the
// exchange the model's layers repeated once per part, part p's shifted by p d and named
// "<prefix>/<layer>" (message_layers()), so the compressors, error feedback, bit counts and the
// deterministic sums see a message of P d values cut into layers and need no change: every part
// is compressed, counted in the uplink bits and summed like the model's own message. After the
// exchange the round splits the aggregate: part 0 goes to the server optimizer, parts 1..P-1 to
// the algorithm's server_update, which changes the algorithm's server state (RunState::
// algorithm_state: plain floats, identical on every rank, saved in checkpoints by
// save_shared). The clients read that state, frozen for the round, through begin_round; it
// reaches them uncompressed, 32 bits a value, and the round counts it in the downlink bits.
// Per-part aggregates are means over the same senders as part 0, so an aggregator that mixes
// coordinates or drops clients would break the algorithm's bookkeeping: such algorithms accept
// the plain mean only (their factories refuse the rest).
//
// Note [Anchor gradients]
// mime needs, before any local step, the mean c of the sampled clients' gradients at x. A round
// of such an algorithm (needs_anchor()) therefore has two exchanges: first every training client
// computes anchor_gradient on the client threads and submits it to RunState::anchor, an exchange
// of its own (plain mean, uncompressed float32, the run's plan and sums, so it is bitwise the
// same at every rank count); take_anchor puts the mean into the server state; then the local
// work and the exchange of the messages run as for any algorithm. The anchor's bits count in
// the round's uplink bits, the state the clients read in its downlink bits. Folding c into the
// previous round's message cannot work: it is the gradient at this round's x.
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

  // Note [Message parts]: the parts of a message ("" first), each num_params long.
  virtual std::vector<std::string> message_part_names() const { return {""}; }
  int message_parts() const { return static_cast<int>(message_part_names().size()); }
  // Floats of the algorithm's server state (0: none); zeros at the start of a run.
  virtual std::int64_t server_state_size() const { return 0; }
  // How many of them (the first) each sampled client receives, counted in the downlink bits.
  virtual std::int64_t server_state_sent() const { return server_state_size(); }
  // Note [Anchor gradients]: whether each sampled client first sends its gradient at x, whose
  // mean (take_anchor) its local work reads.
  virtual bool needs_anchor() const { return false; }
  // Client c's gradient at x for that first exchange (num_params floats), on the client threads.
  virtual void anchor_gradient(Problem&, int /*c*/, std::uint32_t /*round*/, const float* /*x*/,
                               float* /*out*/) {}
  // Puts the sampled clients' mean anchor gradient into the server state, before begin_round.
  virtual void take_anchor(float* /*state*/, const float* /*mean_gradient*/) const {}
  // Before a round's client_message calls, on every instance: the server state, frozen for the
  // round (nullptr when the algorithm has none).
  virtual void begin_round(const float* /*server_state*/) {}
  // After the exchange, on every rank alike: updates `state` from the mean of parts 1..P-1
  // (`parts`, (P-1) num_params floats) over the `senders` clients that sent this round, of
  // `population` clients.
  virtual void server_update(float* /*state*/, const float* /*parts*/, double /*senders*/,
                             int /*population*/) const {}
};

// Note [Message parts]: `layers` repeated for each of `parts` (names as message_part_names
// gives them), part p shifted by p times the layers' total size.
std::vector<LayerView> message_layers(const std::vector<LayerView>& layers,
                                      const std::vector<std::string>& parts);

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
