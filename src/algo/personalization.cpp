#include "algo/personalization.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "algo/interrupt.h"
#include "core/errors.h"

namespace cohort::algo {
namespace {

// The algorithms whose clients take local SGD steps, which the personal steps copy.
bool has_local_steps(const std::string& algorithm) {
  return algorithm == "fedavg" || algorithm == "fedprox" || algorithm == "scaffold" ||
         algorithm == "mime" || algorithm == "mimelite";
}

Option steps_option(long long def, double min, const std::string& help) {
  return opt_int("steps", def, help, min);
}
Option lr_option() {
  return opt_float("lr", 0.0,
                   "rate eta of the personal steps; 0: the algorithm's local rate of the round "
                   "(algorithm.local_lr and its schedule)",
                   0);
}

}  // namespace

const std::vector<PersonalizationRegistration>& personalizations() {
  static const std::vector<PersonalizationRegistration> list = {
      {"none", "every client uses the global model", {}, {}},
      {"local",
       "each client trains its own model from the initial one on its own data, with the "
       "algorithm's local steps, and never communicates",
       {lr_option()},
       {}},
      {"finetune",
       "at each evaluation of the clients (eval.clients), each client's model is the global one "
       "after K local SGD steps on its training samples",
       {steps_option(5, 1, "local SGD steps K from the global model (at least 1)"), lr_option()},
       {}},
      {"ditto",
       "the global model trains by the algorithm; each sampled client also takes K steps "
       "v <- v - eta (g(v) + lambda (v - x)) on its personal model v (Li et al. 2021)",
       {opt_float("lambda", 0.1, "pull lambda of the personal model towards the global one", 0),
        steps_option(0, 0, "personal steps K a round; 0: the algorithm's local steps"),
        lr_option()},
       {}},
      {"ifca",
       "k global models; each sampled client trains the one with the lowest loss on its "
       "training samples, each model averages the updates of the clients that picked it "
       "(Ghosh et al. 2020)",
       {opt_int("k", 2, "number of cluster models (at most clients.num_clients)", 1, 1024),
        opt_float("init_spread", 0.01,
                  "standard deviation of the Gaussian noise added to every weight of models "
                  "2..k at the start (model 1 is the run's initial model), so that models with a "
                  "deterministic initializer (logreg's zeros) start apart; 0: none",
                  0)},
       {}},
  };
  return list;
}

Section personalization_section() {
  return slot_section("personalization",
                      "Personal models and clustered training (docs/algorithms.md §8, Note "
                      "[Personal models]).",
                      "none", personalizations());
}

PersonalizationOptions PersonalizationOptions::from_config(const Config& cfg) {
  PersonalizationOptions o;
  o.name = cfg.get_string("personalization.name");
  using K = PersonalizationKind;
  o.kind = o.name == "local"      ? K::kLocal
           : o.name == "finetune" ? K::kFinetune
           : o.name == "ditto"    ? K::kDitto
           : o.name == "ifca"     ? K::kIfca
                                  : K::kNone;
  if (o.kind == K::kNone) return o;
  const std::string what = "personalization.name = " + o.name;
  const std::string algorithm = cfg.get_string("algorithm.name");
  if (o.kind == K::kLocal || o.kind == K::kFinetune || o.kind == K::kDitto) {
    require_usage(has_local_steps(algorithm),
                  fmt::format("{} takes local SGD steps with the algorithm's options: "
                              "algorithm.name must be fedavg, fedprox, scaffold, mime or "
                              "mimelite, not {}",
                              what, algorithm));
    o.lr = cfg.get_float("personalization.lr");
  }
  if (o.kind == K::kLocal)
    require_usage(cfg.get_string("attack.name") == "none",
                  what + " sends nothing, so there is nothing to attack: set attack.name = none "
                         "(got " + cfg.get_string("attack.name") + ")");
  if (o.kind == K::kFinetune || o.kind == K::kDitto) o.steps = cfg.get_int("personalization.steps");
  if (o.kind == K::kFinetune)
    require_usage(cfg.get_bool("eval.clients"),
                  what + " changes only how the clients are evaluated: set eval.clients = true "
                         "(and data.client_test_fraction > 0)");
  if (o.kind == K::kDitto) o.lambda = cfg.get_float("personalization.lambda");
  if (o.kind == K::kIfca) {
    o.clusters = static_cast<int>(cfg.get_int("personalization.k"));
    o.init_spread = cfg.get_float("personalization.init_spread");
    const long long n = cfg.get_int("clients.num_clients");
    require_usage(o.clusters <= n,
                  fmt::format("personalization.k = {} exceeds clients.num_clients = {}: every "
                              "cluster model needs clients that can pick it; allowed: 1 to {}",
                              o.clusters, n, n));
    require_usage(algorithm == "fedavg" || algorithm == "fedprox",
                  fmt::format("{} trains each cluster model by FedAvg: algorithm.name must be "
                              "fedavg or fedprox, not {}",
                              what, algorithm));
    require_usage(cfg.get_string("attack.name") == "none",
                  what + " runs without attacks (attack.name = none); got attack.name = " +
                      cfg.get_string("attack.name"));
    require_usage(cfg.get_float("algorithm.client_momentum") == 0 &&
                      !cfg.get_bool("compressor.error_feedback") &&
                      cfg.get_string("algorithm.local_momentum_state") != "keep",
                  what + " moves clients between cluster models, which per-client memories "
                         "(algorithm.client_momentum, compressor.error_feedback, "
                         "algorithm.local_momentum_state = keep) are not defined for: turn them "
                         "off");
    require_usage(cfg.get_string("compressor.name") != "powersgd",
                  what + " keeps no per-client compressor state: compressor.name = powersgd "
                         "(a warm-started Q per client) is not supported with it");
    require_usage(cfg.get_string("downlink_compressor.name") == "none",
                  what + " sends all k models uncompressed: downlink_compressor.name must be "
                         "none");
    require_usage(cfg.get_string("aggregator.name") == "mean",
                  what + " averages each cluster model over the clients that picked it, "
                         "however few: it needs aggregator.name = mean, not " +
                      cfg.get_string("aggregator.name"));
  }
  return o;
}

Personalization::Personalization(PersonalizationOptions o, FedAvgOptions local_steps,
                                 std::uint64_t seed, std::vector<float> x0)
    : o_(std::move(o)), local_(std::move(local_steps)), seed_(seed), x0_(std::move(x0)),
      grad_(x0_.size()) {}

void Personalization::declare_state(ClientStore& store) {
  store_ = &store;
  if (!o_.keeps_models()) return;
  slot_ = store.slot("personal");  // declared by another thread's instance
  if (slot_ == ClientStore::kNone)
    slot_ = store.declare("personal", "personal model", static_cast<std::int64_t>(x0_.size()));
}

double Personalization::steps(Problem& problem, int c, std::uint32_t round, float* y,
                              const float* pull) {
  const auto d = static_cast<std::int64_t>(x0_.size());
  const auto client = static_cast<std::uint32_t>(c);
  BatchStream batches(problem.client_samples(c), local_.batch_size,
                      Rng(seed_, round, client, Purpose::kPersonalBatches));
  Rng noise(seed_, round, client, Purpose::kPersonalNoise);
  // finetune's K is its own (the schema asks for at least 1; K = 0 leaves the global model);
  // local's and ditto's default to the algorithm's.
  const std::int64_t k = o_.kind == PersonalizationKind::kFinetune || o_.steps > 0 ? o_.steps
                         : local_.local_steps > 0
                             ? local_.local_steps
                             : local_.local_epochs * batches.batches_per_epoch();
  const auto lr = static_cast<float>(o_.lr > 0 ? o_.lr : local_.schedule.at(round));
  const double lambda = o_.lambda;
  double loss_sum = 0;
  for (std::int64_t step = 0; step < k; ++step) {
    if (abandon_local_work()) break;  // the round is dropped (Note [Stopping mid-round])
    loss_sum += problem.loss_grad(c, y, batches.next(), grad_.data(), noise);
    local_.gradient.apply(grad_.data(), y, d);
    if (pull != nullptr)
      for (std::int64_t i = 0; i < d; ++i)
        grad_[i] = static_cast<float>(grad_[i] + lambda * (y[i] - pull[i]));
    for (std::int64_t i = 0; i < d; ++i) y[i] -= lr * grad_[i];
  }
  return k > 0 ? loss_sum / static_cast<double>(k) : 0.0;
}

double Personalization::update(Problem& problem, int c, std::uint32_t round, const float* x) {
  if (!o_.keeps_models()) throw std::logic_error("Personalization::update without personal models");
  if (slot_ == ClientStore::kNone) throw std::logic_error("Personalization: no declare_state");
  const bool fresh = store_->find(slot_, c).empty();
  std::span<float> v = store_->row(slot_, c);
  if (fresh) std::copy(x0_.begin(), x0_.end(), v.begin());  // v_c starts at x_0
  return steps(problem, c, round, v.data(),
               o_.kind == PersonalizationKind::kDitto ? x : nullptr);
}

void Personalization::personal_model(Problem& problem, int c, std::uint32_t round, const float* x,
                                     float* out) {
  const std::size_t d = x0_.size();
  if (o_.keeps_models()) {
    const std::span<const float> v = store_->find(slot_, c);
    std::copy_n(v.empty() ? x0_.data() : v.data(), d, out);
  } else if (o_.kind == PersonalizationKind::kFinetune) {
    std::copy_n(x, d, out);
    steps(problem, c, round, out, nullptr);
  } else {
    std::copy_n(x, d, out);
  }
}

}  // namespace cohort::algo
