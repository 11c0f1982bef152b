// The attacks are a few lines each, so they share this file with their registry.
#include "attack/attack.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

#include "core/errors.h"
#include "robust/krum.h"

namespace cohort::attack {

std::vector<int> byzantine_clients(std::uint64_t seed, int num_clients, const AttackOptions& o) {
  if (o.name == "none") return {};
  const int k = o.count > 0 ? o.count
                            : static_cast<int>(std::lround(o.fraction * static_cast<double>(num_clients)));
  require_usage(k <= num_clients, fmt::format("attack.count = {} exceeds clients.num_clients = {}",
                                              k, num_clients));
  return Rng(seed, 0, kGlobalClient, Purpose::kAttack).choose_sorted(num_clients, k);
}

void Attack::corrupt(std::span<float>, Rng&) const {}
std::string Attack::craft_problem(int n, int f) const {
  if (omniscient() && n - f < 1)
    return "attack " + name() + " crafts its message from the honest ones, and none is sampled";
  return "";
}
void Attack::craft(const HonestStats&, int, int, std::span<float>) const {
  throw std::logic_error("attack " + name() + " is not omniscient");
}

// Note [Mimic target]
// attack.name = mimic with target = variance follows the bucketing paper's mimic attack (its
// reference code's variant with one warm-up iteration): in the first round in which a Byzantine
// client is sampled, with g_1..g_n the honest messages (client order) and mu their mean,
//   z0 ~ N(0, I_d) from the stream (seed, round 1, kGlobalClient, kAttack),
//   v  = sum_i <g_i - mu, z0> (g_i - mu)     (one power-iteration step towards the leading
//                                              eigenvector of the honest messages' scatter),
// and the target is the honest client maximising <g_i, v> (v's norm does not change the choice;
// ties go to the lower id). The attackers send that client's message in that round and in every
// later round that samples it (the round's lowest-id honest client's otherwise). Every sum runs
// in double in a fixed order over messages that every rank holds in client order, so the choice
// is the same at any rank count; the round gathers the honest messages once (O(n d) memory).
std::size_t mimic_variance_target(std::span<const float> g, std::size_t n, std::int64_t dim,
                                  std::uint64_t seed) {
  if (n == 0 || g.size() != n * static_cast<std::size_t>(dim))
    throw std::invalid_argument("mimic_variance_target: needs n >= 1 messages of dim floats");
  const auto d = static_cast<std::size_t>(dim);
  std::vector<double> mu(d, 0.0), z0(d), v(d, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < d; ++k) mu[k] += g[i * d + k];
  for (double& m : mu) m /= static_cast<double>(n);
  Rng rng(seed, 1, kGlobalClient, Purpose::kAttack);
  for (double& z : z0) z = rng.normal();
  for (std::size_t i = 0; i < n; ++i) {
    double w = 0;
    for (std::size_t k = 0; k < d; ++k) w += (g[i * d + k] - mu[k]) * z0[k];
    for (std::size_t k = 0; k < d; ++k) v[k] += w * (g[i * d + k] - mu[k]);
  }
  std::size_t best = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < n; ++i) {
    double score = 0;
    for (std::size_t k = 0; k < d; ++k) score += g[i * d + k] * v[k];
    if (score > best_score) best_score = score, best = i;
  }
  return best;
}

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) throw std::invalid_argument("normal_quantile: p must lie in (0, 1)");
  double lo = -40, hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-13; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

std::string alie_z_auto_problem(int n, int f) {
  const int s = n / 2 + 1 - f;  // floor(n/2 + 1) - f
  if (n - f < 1) return fmt::format("alie z: auto is undefined for n = {}, f = {} (no honest "
                                    "message); set attack.z", n, f);
  const double p = static_cast<double>(n - f - s) / static_cast<double>(n - f);
  if (!(p > 0 && p < 1))
    return fmt::format("alie z: auto is undefined for n = {}, f = {} ((n-f-s)/(n-f) = {}, "
                       "s = floor(n/2+1)-f; it needs n >= 3 and f <= n/2); set attack.z to a "
                       "number", n, f, p);
  return "";
}

double alie_z_auto(int n, int f) {
  if (const std::string why = alie_z_auto_problem(n, f); !why.empty())
    throw std::logic_error(why);  // callers check alie_z_auto_problem first
  const int s = n / 2 + 1 - f;
  return normal_quantile(static_cast<double>(n - f - s) / static_cast<double>(n - f));
}

// Note [minmax and minsum]
// The malicious message is m(gamma) = mu - gamma sigma (the -std direction p = -sigma). With
// a_i = ||g_i - mu||^2, b_i = <g_i - mu, sigma> and c = ||sigma||^2 (sums in double, in
// coordinate order), ||m(gamma) - g_i||^2 = a_i + 2 gamma b_i + gamma^2 c, a convex quadratic,
// so the largest feasible gamma is a root, solved in closed form (the papers bisect towards it
// from gamma = 10 to 1e-5):
//  - minmax: max_i ||m - g_i||^2 <= D = max_{i,j} ||g_i - g_j||^2: gamma = min_i of the larger
//    root of c gamma^2 + 2 b_i gamma + a_i - D;
//  - minsum: sum_i ||m - g_i||^2 <= S = max_i sum_j ||g_i - g_j||^2: the larger root of
//    n c gamma^2 + 2 (sum_i b_i) gamma + sum_i a_i - S.
// gamma = 0 (m = mu) is always feasible (a_i <= D, sum_i a_i <= S/2), so the roots are real and
// >= 0. D and S come from the centred Gram matrix of the honest messages (Note [Gram distances]).
// Every rank holds all honest messages and computes the same gamma.
double minmax_gamma(const HonestStats& h, bool sum) {
  const int n = h.n;
  const auto d = static_cast<std::int64_t>(h.mean.size());
  if (n < 2) return 0.0;
  std::vector<const float*> rows(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) rows[i] = h.messages.data() + static_cast<std::int64_t>(i) * d;
  const std::vector<double> dist = robust::gram_distances(robust::centered_gram(rows, n, false, d),
                                                          n, n);
  double D = 0, S = 0;
  for (int i = 0; i < n; ++i) {
    double row = 0;
    for (int j = 0; j < n; ++j) {
      D = std::max(D, dist[static_cast<std::size_t>(i) * n + j]);
      row += dist[static_cast<std::size_t>(i) * n + j];
    }
    S = std::max(S, row);
  }
  double c = 0;
  for (std::int64_t k = 0; k < d; ++k) c += h.stddev[k] * h.stddev[k];
  if (!(c > 0)) return 0.0;  // identical honest messages: m = mu
  std::vector<double> a(static_cast<std::size_t>(n), 0.0), b(a);
  for (int i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) {
      const double e = static_cast<double>(rows[i][k]) - h.mean[k];
      a[i] += e * e;
      b[i] += e * h.stddev[k];
    }
  // The larger root of C g^2 + 2 B g + A = 0 (A <= 0); clamped at 0 against rounding.
  const auto root = [](double C, double B, double A) {
    return std::max(0.0, (-B + std::sqrt(std::max(0.0, B * B - C * A))) / C);
  };
  // m - g_i = (mu - g_i) - gamma sigma: the cross term is -2 gamma <mu - g_i, sigma> = 2 gamma b_i.
  if (sum) {
    double A = -S, B = 0;
    for (int i = 0; i < n; ++i) {
      A += a[i];
      B += b[i];
    }
    return root(n * c, B, A);
  }
  double gamma = std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i) gamma = std::min(gamma, root(c, b[i], a[i] - D));
  return gamma;
}

namespace {

class None final : public Attack {
 public:
  std::string name() const override { return "none"; }
};

class SignFlip final : public Attack {  // send -scale * u_i
 public:
  explicit SignFlip(double scale) : scale_(scale) {}
  std::string name() const override { return "signflip"; }
  void corrupt(std::span<float> m, Rng&) const override {
    for (auto& v : m) v = static_cast<float>(-scale_ * v);
  }

 private:
  double scale_;
};

class LabelFlip final : public Attack {  // honest training on labels C-1-y
 public:
  std::string name() const override { return "labelflip"; }
  bool flips_labels() const override { return true; }
};

class Gaussian final : public Attack {  // N(0, sigma^2 I)
 public:
  explicit Gaussian(double sigma) : sigma_(sigma) {}
  std::string name() const override { return "gaussian"; }
  void corrupt(std::span<float> m, Rng& rng) const override {
    for (auto& v : m) v = static_cast<float>(sigma_ * rng.normal());
  }

 private:
  double sigma_;
};

class NonFinite final : public Attack {  // NaN or +Inf
 public:
  explicit NonFinite(bool inf) : inf_(inf) {}
  std::string name() const override { return "nonfinite"; }
  void corrupt(std::span<float> m, Rng&) const override {
    std::fill(m.begin(), m.end(), inf_ ? std::numeric_limits<float>::infinity()
                                       : std::numeric_limits<float>::quiet_NaN());
  }

 private:
  bool inf_;
};

class Zero final : public Attack {
 public:
  std::string name() const override { return "zero"; }
  void corrupt(std::span<float> m, Rng&) const override { std::fill(m.begin(), m.end(), 0.0f); }
};

class Dropout final : public Attack {  // sends nothing
 public:
  std::string name() const override { return "dropout"; }
  bool drops() const override { return true; }
};

class Ipm final : public Attack {  // -eps * mean(honest)
 public:
  explicit Ipm(double eps) : eps_(eps) {}
  std::string name() const override { return "ipm"; }
  bool omniscient() const override { return true; }
  void craft(const HonestStats& h, int, int, std::span<float> out) const override {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(-eps_ * h.mean[i]);
  }

 private:
  double eps_;
};

class Alie final : public Attack {  // mu - z sigma
 public:
  explicit Alie(std::string z) : z_(std::move(z)) {}
  std::string name() const override { return "alie"; }
  bool omniscient() const override { return true; }
  bool needs_stddev() const override { return true; }
  std::string craft_problem(int n, int f) const override {
    std::string why = Attack::craft_problem(n, f);
    if (why.empty() && z_ == "auto") why = alie_z_auto_problem(n, f);
    return why;
  }
  void craft(const HonestStats& h, int n, int f, std::span<float> out) const override {
    const double z = z_ == "auto" ? alie_z_auto(n, f) : std::stod(z_);
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<float>(h.mean[i] - z * h.stddev[i]);
  }

 private:
  std::string z_;
};

class Mimic final : public Attack {  // copy one honest client's message
 public:
  std::string name() const override { return "mimic"; }
  bool omniscient() const override { return true; }
  bool needs_mimic() const override { return true; }
  void craft(const HonestStats& h, int, int, std::span<float> out) const override {
    std::copy(h.mimic.begin(), h.mimic.end(), out.begin());
  }
};

class MinMax final : public Attack {  // mu - gamma sigma, gamma from Note [minmax and minsum]
 public:
  explicit MinMax(bool sum) : sum_(sum) {}
  std::string name() const override { return sum_ ? "minsum" : "minmax"; }
  bool omniscient() const override { return true; }
  bool needs_stddev() const override { return true; }
  bool needs_messages() const override { return true; }
  void craft(const HonestStats& h, int, int, std::span<float> out) const override {
    const double gamma = minmax_gamma(h, sum_);
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<float>(h.mean[i] - gamma * h.stddev[i]);
  }

 private:
  bool sum_;
};

}  // namespace

// The registry; each entry declares its options (Note [Registration]).
const std::vector<AttackRegistration>& attacks() {
  using O = AttackOptions;
  static const std::vector<AttackRegistration> list = {
      {"none", "every client is honest", {}, [](const O&) { return std::make_unique<None>(); }},
      {"signflip",
       "send -scale u_i",
       {field(opt_float("scale", 1.0, "multiplier of -u_i"), &O::scale)},
       [](const O& o) { return std::make_unique<SignFlip>(o.scale); }},
      {"labelflip",
       "train honestly on labels y -> C-1-y (classification)",
       {},
       [](const O&) { return std::make_unique<LabelFlip>(); }},
      {"gaussian",
       "send N(0, sigma^2 I)",
       {field(opt_float("sigma", 1.0, "standard deviation", 0), &O::sigma)},
       [](const O& o) { return std::make_unique<Gaussian>(o.sigma); }},
      {"nonfinite",
       "send NaN (or +inf) in every coordinate",
       {field(opt_enum("value", "nan", {"nan", "inf"}, "what to send"), &O::value)},
       [](const O& o) { return std::make_unique<NonFinite>(o.value == "inf"); }},
      {"zero", "send zeros", {}, [](const O&) { return std::make_unique<Zero>(); }},
      {"dropout",
       "send nothing: the round aggregates fewer messages",
       {},
       [](const O&) { return std::make_unique<Dropout>(); }},
      {"ipm",
       "every Byzantine sends -eps mean(honest)",
       {field(opt_float("eps", 0.1, "scale", 0), &O::eps)},
       [](const O& o) { return std::make_unique<Ipm>(o.eps); }},
      {"alie",
       "every Byzantine sends mu - z sigma (coordinate-wise over the honest messages)",
       {field(
           opt_string("z", "auto", "auto: Phi^-1((n-f-s)/(n-f)), s = floor(n/2+1)-f; or a number"),
           &O::z)},
       [](const O& o) {
         if (o.z != "auto") {
           std::size_t used = 0;
           double z = 0;
           try {
             z = std::stod(o.z, &used);
           } catch (const std::logic_error&) {
             used = 0;
           }
           require_usage(used == o.z.size() && std::isfinite(z),
                         "attack.z = '" + o.z + "' is not allowed: expected auto or a number");
         }
         return std::make_unique<Alie>(o.z);
       }},
      {"mimic",
       "every Byzantine copies one honest client's message: the lowest-id one of the round, or "
       "the one the honest messages' leading direction picks in the attack's first round",
       {field(opt_enum("target", "lowest", {"lowest", "variance"},
                       "lowest: the round's lowest-id honest client; variance: the honest "
                       "client whose first-round message reaches furthest along the direction "
                       "of largest spread (Karimireddy, He and Jaggi 2022), kept for the run "
                       "(Note [Mimic target])"),
              &O::target)},
       [](const O&) { return std::make_unique<Mimic>(); }},
      {"minmax",
       "every Byzantine sends mu - gamma sigma, gamma the largest keeping its largest distance to "
       "an honest message within the largest honest pairwise distance",
       {},
       [](const O&) { return std::make_unique<MinMax>(false); }},
      {"minsum",
       "every Byzantine sends mu - gamma sigma, gamma the largest keeping its summed squared "
       "distance to the honest messages within the largest honest one",
       {},
       [](const O&) { return std::make_unique<MinMax>(true); }},
  };
  return list;
}

// The share of Byzantine clients: options of every attack.
static std::vector<Field<AttackOptions>> population_fields() {
  return {
      field(opt_float("fraction", 0.0, "Byzantine share of the population (when count is 0)", 0, 1),
            &AttackOptions::fraction),
      field(opt_int("count", 0, "number of Byzantine clients; 0: use fraction"),
            &AttackOptions::count)};
}

Section attack_section() {
  Section s = slot_section(
      "attack",
      "Byzantine clients (docs/algorithms.md §4): a fixed subset of the population chosen "
      "from the seed; the sampled ones act each round. Omniscient attacks (ipm, alie, mimic, "
      "minmax, minsum) see the round's honest messages; compression applies after the attack.",
      "none", attacks());
  for (const auto& f : population_fields()) s.options.push_back(f.option);
  return s;
}

AttackOptions attack_options(const Config& cfg) {
  AttackOptions o;
  o.name = cfg.get_string("attack.name");
  read_fields(o, population_fields(), cfg, "attack");
  if (const auto* r = find_registration(attacks(), o.name))
    read_fields(o, r->options, cfg, "attack");
  return o;
}

std::unique_ptr<Attack> make_attack(const AttackOptions& o) {
  const auto* r = find_registration(attacks(), o.name);
  if (r == nullptr)
    throw UsageError("unknown attack.name '" + o.name + "' (known: " + buildable_names(attacks()) +
                     ")");
  return r->make(o);
}

}  // namespace cohort::attack
