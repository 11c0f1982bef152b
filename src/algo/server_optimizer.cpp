// The server optimizers are a few lines each, so they share this file (one category, one
// registration list with their options), rather than five file pairs.
#include "algo/server_optimizer.h"

#include <cmath>

namespace cohort::algo {

namespace {

class Sgd final : public ServerOptimizer {
 public:
  std::string name() const override { return "sgd"; }
  void step(float* x, const float* g, std::int64_t d, double lr) override {
    for (std::int64_t i = 0; i < d; ++i) x[i] = static_cast<float>(x[i] - lr * g[i]);
  }
};

// ema: m <- (1-beta) g + beta m; heavy_ball: m <- beta m + g; then x <- x - lr m.
// nesterov: m <- beta m + g; x <- x - lr (g + beta m).
class Momentum final : public ServerOptimizer {
 public:
  Momentum(double beta, bool heavy_ball, bool nesterov)
      : beta_(beta), heavy_ball_(heavy_ball), nesterov_(nesterov) {}
  std::string name() const override { return nesterov_ ? "nesterov" : "momentum"; }
  void save(StateBundle& b) const override { b.f32["server/m"] = m_; }
  void load(const StateBundle& b) override { m_ = b.get_f32("server/m"); }
  void step(float* x, const float* g, std::int64_t d, double lr) override {
    if (m_.empty()) m_.assign(static_cast<std::size_t>(d), 0.0f);
    const double a = (heavy_ball_ || nesterov_) ? 1.0 : 1.0 - beta_;
    for (std::int64_t i = 0; i < d; ++i) {
      const double m = beta_ * m_[i] + a * g[i];
      m_[i] = static_cast<float>(m);
      const double dir = nesterov_ ? g[i] + beta_ * m : m;
      x[i] = static_cast<float>(x[i] - lr * dir);
    }
  }

 private:
  double beta_;
  bool heavy_ball_, nesterov_;
  std::vector<float> m_;
};

// Adam and Yogi (Reddi et al., "Adaptive Federated Optimization"): m <- b1 m + (1-b1) g;
// adam: v <- b2 v + (1-b2) g^2; yogi: v <- v - (1-b2) g^2 sign(v - g^2);
// x <- x - lr m_hat / (sqrt(v_hat) + eps), hats = bias-corrected when asked.
class Adaptive final : public ServerOptimizer {
 public:
  Adaptive(const ServerOptimizerOptions& o, bool yogi) : o_(o), yogi_(yogi) {}
  std::string name() const override { return yogi_ ? "yogi" : "adam"; }
  void save(StateBundle& b) const override {
    b.f32["server/m"] = m_;
    b.f32["server/v"] = v_;
    b.i64["server/t"] = {t_};
  }
  void load(const StateBundle& b) override {
    m_ = b.get_f32("server/m");
    v_ = b.get_f32("server/v");
    t_ = b.get_i64("server/t").at(0);
  }
  void step(float* x, const float* g, std::int64_t d, double lr) override {
    if (m_.empty()) {
      m_.assign(static_cast<std::size_t>(d), 0.0f);
      v_.assign(static_cast<std::size_t>(d), 0.0f);
    }
    ++t_;
    const double c1 = o_.bias_correction ? 1.0 - std::pow(o_.beta1, double(t_)) : 1.0;
    const double c2 = o_.bias_correction ? 1.0 - std::pow(o_.beta2, double(t_)) : 1.0;
    for (std::int64_t i = 0; i < d; ++i) {
      const double gi = g[i], g2 = gi * gi;
      const double m = o_.beta1 * m_[i] + (1.0 - o_.beta1) * gi;
      double v = v_[i];
      if (yogi_) {
        const double s = (v - g2) > 0 ? 1.0 : (v - g2) < 0 ? -1.0 : 0.0;
        v = v - (1.0 - o_.beta2) * g2 * s;
      } else {
        v = o_.beta2 * v + (1.0 - o_.beta2) * g2;
      }
      m_[i] = static_cast<float>(m);
      v_[i] = static_cast<float>(v);
      x[i] = static_cast<float>(x[i] - lr * (m / c1) / (std::sqrt(v / c2) + o_.eps));
    }
  }

 private:
  ServerOptimizerOptions o_;
  bool yogi_;
  std::int64_t t_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace

// The registry; each entry declares its options (Note [Registration]).
const std::vector<ServerOptimizerRegistration>& server_optimizers() {
  static const std::vector<ServerOptimizerRegistration> list = [] {
    using O = ServerOptimizerOptions;
    const auto lr = [](double def) {
      return field(opt_float("lr", def, "server learning rate", 0, INFINITY, true), &O::lr);
    };
    const auto beta = field(opt_float("beta", 0.9, "momentum", 0, 1), &O::beta);
    const auto beta1 = field(opt_float("beta1", 0.9, "first-moment decay", 0, 1), &O::beta1);
    const auto beta2 = field(opt_float("beta2", 0.99, "second-moment decay", 0, 1), &O::beta2);
    const auto bias_correction =
        field(opt_bool("bias_correction", false, "divide m, v by 1 - beta^t"), &O::bias_correction);
    return std::vector<ServerOptimizerRegistration>{
        {"sgd",
         "x <- x - lr g (lr = 1 with fedavg is plain FedAvg)",
         {lr(1.0)},
         [](const O&) { return std::make_unique<Sgd>(); }},
        {"momentum",
         "ema: m <- (1-beta) g + beta m; heavy_ball: m <- beta m + g; x <- x - lr m",
         {lr(1.0), beta,
          field<O>(opt_enum("form", "ema", {"ema", "heavy_ball"}, "momentum form"),
                   [](O& o, const Config& cfg, const std::string& path) {
                     o.heavy_ball = cfg.get_string(path) == "heavy_ball";
                   })},
         [](const O& o) { return std::make_unique<Momentum>(o.beta, o.heavy_ball, false); }},
        {"nesterov",
         "m <- beta m + g; x <- x - lr (g + beta m)",
         {lr(1.0), beta},
         [](const O& o) { return std::make_unique<Momentum>(o.beta, true, true); }},
        {"adam",
         "Adam (FedAdam): m, v moving averages of g and g^2",
         {lr(0.01), beta1, beta2,
          field(opt_float("eps", 1e-3, "added to sqrt(v) (tau in the FedOpt paper)", 0, INFINITY,
                          true),
                &O::eps),
          bias_correction},
         [](const O& o) { return std::make_unique<Adaptive>(o, false); }},
        {"yogi",
         "Yogi (FedYogi): v <- v - (1-beta2) g^2 sign(v - g^2)",
         {lr(0.01), beta1, beta2,
          field(opt_float("eps", 1e-3, "added to sqrt(v)", 0, INFINITY, true), &O::eps),
          bias_correction},
         [](const O& o) { return std::make_unique<Adaptive>(o, true); }},
    };
  }();
  return list;
}

Section server_optimizer_section() {
  Section s = slot_section("server_optimizer", "How the server applies the aggregate g to x.",
                           "sgd", server_optimizers());
  s.children = {lr_schedule_section("server_optimizer.lr")};
  return s;
}

ServerOptimizerOptions ServerOptimizerOptions::from_config(const Config& cfg) {
  ServerOptimizerOptions o;
  o.name = cfg.get_string("server_optimizer.name");
  if (const auto* r = find_registration(server_optimizers(), o.name))
    read_fields(o, r->options, cfg, "server_optimizer");
  o.schedule = LrSchedule::from_config(cfg, "server_optimizer.lr_schedule", o.lr,
                                       "server_optimizer.lr");
  return o;
}

std::unique_ptr<ServerOptimizer> make_server_optimizer(const ServerOptimizerOptions& o) {
  const auto* r = find_registration(server_optimizers(), o.name);
  if (r == nullptr) throw std::logic_error("unknown server optimizer " + o.name);
  return r->make(o);
}

}  // namespace cohort::algo
