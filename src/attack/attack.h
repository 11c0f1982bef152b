// Byzantine attacks (docs/algorithms.md §4). The Byzantine clients are a fixed subset of the
// population chosen from the seed; in each round the sampled ones act. Omniscient attacks see
// the round's honest messages (after worker momentum, before compression) through their
// coordinate-wise statistics, which the round loop all-reduces exactly, so every plan and rank
// count gives the same attack. Compression applies after the attack.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/registration.h"
#include "core/rng.h"

namespace cohort::attack {

struct AttackOptions {
  std::string name = "none";
  double fraction = 0.0;  // of the population; used when count is 0
  int count = 0;
  double scale = 1.0;         // signflip
  double sigma = 1.0;         // gaussian
  std::string value = "nan";  // nonfinite: nan | inf
  double eps = 0.1;           // ipm
  std::string z = "auto";     // alie: auto or a number
  std::string target = "lowest";  // mimic: lowest | variance (Note [Mimic target])
};

// The Byzantine clients (sorted): round(fraction * N) or count of them, drawn from the
// (seed, 0, kGlobalClient, kAttack) stream.
std::vector<int> byzantine_clients(std::uint64_t seed, int num_clients, const AttackOptions& o);

// The round's honest messages, summarised: coordinate-wise mean and unbiased standard
// deviation over n honest messages, the message of the lowest-id honest client (mimic) and,
// for the attacks that need distances between them (minmax, minsum), all n messages in client
// order (n x d, row-major).
struct HonestStats {
  int n = 0;
  std::vector<double> mean, stddev;
  std::vector<float> mimic;
  std::vector<float> messages;
};

class Attack {
 public:
  virtual ~Attack() = default;
  virtual std::string name() const = 0;
  virtual bool omniscient() const { return false; }
  virtual bool flips_labels() const { return false; }  // labelflip: trains on C-1-y
  virtual bool drops() const { return false; }         // dropout: sends nothing
  virtual bool needs_stddev() const { return false; }
  virtual bool needs_mimic() const { return false; }
  virtual bool needs_messages() const { return false; }  // HonestStats::messages
  // Non-omniscient attacks: the Byzantine client's message from its own honest one.
  virtual void corrupt(std::span<float> message, Rng& rng) const;
  // Omniscient attacks: the message every sampled Byzantine client sends, from the round's
  // honest statistics; n = messages in the round, f = sampled Byzantine clients.
  virtual void craft(const HonestStats& honest, int n, int f, std::span<float> out) const;
  // Why craft() has no defined result in a round of n messages of which f (>= 1) are Byzantine,
  // or "" when it has one: an omniscient attack needs an honest message to learn from, and alie's
  // z: auto needs (n-f-s)/(n-f) in (0, 1). Checked for every round before training, and by
  // `cohort aggregate`, so that craft() never fails mid-run.
  virtual std::string craft_problem(int n, int f) const;
};

using AttackRegistration =
    Registration<std::unique_ptr<Attack>(const AttackOptions&), Field<AttackOptions>>;

// The attacks (one explicit list, Note [Registration]) and their slot's schema.
const std::vector<AttackRegistration>& attacks();
Section attack_section();
// The attack.* options of a resolved config.
AttackOptions attack_options(const Config& cfg);

std::unique_ptr<Attack> make_attack(const AttackOptions& o);

// Whether the options ask for mimic with target = variance (Note [Mimic target] in attack.cpp).
inline bool mimic_by_variance(const AttackOptions& o) {
  return o.name == "mimic" && o.target == "variance";
}
// mimic with target = variance (Note [Mimic target] in attack.cpp): the index, among n honest
// messages g (n x dim, client order), of the one with the largest projection on
// sum_i <g_i - mu, z0> (g_i - mu), z0 ~ N(0, I) from (seed, 1, kGlobalClient, kAttack).
std::size_t mimic_variance_target(std::span<const float> g, std::size_t n, std::int64_t dim,
                                  std::uint64_t seed);

// minmax / minsum (Shejwalkar & Houmansadr 2021, docs/algorithms.md §4): the largest gamma >= 0 for
// which mu - gamma sigma stays, in max (minmax) or summed (minsum) squared distance to the honest
// messages, within what the honest messages themselves reach (Note [minmax and minsum]).
double minmax_gamma(const HonestStats& h, bool sum);

// ALIE's z for n messages of which f are Byzantine: Phi^-1((n - f - s) / (n - f)) with
// s = floor(n/2 + 1) - f (0.2533 for n = 25, f = 5).
double alie_z_auto(int n, int f);
// Why alie_z_auto(n, f) is undefined, or "" when it is defined (n >= 3 and f <= floor(n/2)).
std::string alie_z_auto_problem(int n, int f);
// The standard normal quantile (bisection on erfc to 1e-12).
double normal_quantile(double p);

}  // namespace cohort::attack
