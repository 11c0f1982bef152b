// Personalization (docs/algorithms.md §8): whether and how each client ends up with a model of
// its own besides the global one. Selected by personalization.name; one instance per client
// thread (Note [Client threads]), sharing the client store's slot.
//
// Note [Personal models]
//  - none: the clients use the global model.
//  - local: every client trains its own model v_c from the initial model x_0 on its own data and
//    never communicates: a sampled client takes K local SGD steps on v_c, the global model stays
//    x_0, and no message is sent (no uplink or downlink bits).
//  - ditto (lambda): the global model trains by the run's algorithm; a sampled client also takes
//    K steps v_c <- v_c - eta (g(v_c) + lambda (v_c - x)), x the round's global model, g the
//    minibatch gradient after the algorithm's clipping and weight decay.
//  - finetune (steps K): no state; when the clients are evaluated (eval.clients), client c's
//    model is the global model after K local SGD steps on c's training samples.
//  - ifca (k): k global models; the round (algo/round.cpp, Note [IFCA rounds]) lets each sampled
//    client pick the one with the lowest loss on its training samples, and a client is evaluated
//    with the model it would pick.
// local and ditto keep v_c in the client store's slot "personal" (d floats per client, counted
// and budgeted like all client state, saved in checkpoints); a client without a row has
// v_c = x_0, so v_c starts at the initial model and costs nothing until the client trains. The
// personal steps take their minibatches and data noise from the (seed, round, c,
// kPersonalBatches / kPersonalNoise) streams, their K, batch size and rate from the algorithm's
// local steps unless personalization.steps and personalization.lr say otherwise.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algo/fedavg.h"
#include "algo/problem.h"
#include "core/client_store.h"
#include "core/config.h"
#include "core/registration.h"

namespace cohort::algo {

enum class PersonalizationKind { kNone, kLocal, kFinetune, kDitto, kIfca };

struct PersonalizationOptions {
  PersonalizationKind kind = PersonalizationKind::kNone;
  std::string name = "none";
  std::int64_t steps = 0;  // K of the personal steps; 0: the algorithm's local steps
  double lr = 0;           // eta of the personal steps; 0: the algorithm's local rate
  double lambda = 0;       // ditto's pull towards the global model
  int clusters = 1;        // ifca's k
  double init_spread = 0;  // ifca: std of the noise added to models 1..k-1 at the start
  // The personalization.* keys, with the checks of the combinations with the rest of the config
  // (UsageError naming the key and what works).
  static PersonalizationOptions from_config(const Config& cfg);
  // Whether clients keep a personal model (local, ditto).
  bool keeps_models() const {
    return kind == PersonalizationKind::kLocal || kind == PersonalizationKind::kDitto;
  }
  // Whether clients are evaluated with a model of their own rather than the global one.
  bool personal_eval() const { return kind != PersonalizationKind::kNone; }
};

class Personalization {
 public:
  // x0: the initial model; local_steps: the algorithm's local-step options (K, B, eta, clipping).
  Personalization(PersonalizationOptions o, FedAvgOptions local_steps, std::uint64_t seed,
                  std::vector<float> x0);
  const PersonalizationOptions& options() const { return o_; }
  // Declares the slot "personal" (local, ditto); the other threads' instances find it.
  void declare_state(ClientStore& store);
  // local, ditto: client c's personal steps in round `round` (x: the round's global model).
  // Returns the mean minibatch loss of the steps.
  double update(Problem& problem, int c, std::uint32_t round, const float* x);
  // local, ditto, finetune: the model client c uses after round `round`, written to out (d
  // floats). Other kinds: x.
  void personal_model(Problem& problem, int c, std::uint32_t round, const float* x, float* out);

 private:
  // K steps from y (in place) on client c's samples; pull: ditto's anchor x (nullptr: none).
  double steps(Problem& problem, int c, std::uint32_t round, float* y, const float* pull);
  PersonalizationOptions o_;
  FedAvgOptions local_;
  std::uint64_t seed_;
  std::vector<float> x0_, grad_;
  ClientStore* store_ = nullptr;
  ClientStore::Slot slot_ = ClientStore::kNone;
};

using PersonalizationRegistration = Registration<void()>;
const std::vector<PersonalizationRegistration>& personalizations();
Section personalization_section();

}  // namespace cohort::algo
