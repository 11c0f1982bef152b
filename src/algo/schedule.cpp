#include "algo/schedule.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "core/errors.h"

namespace cohort::algo {

Section lr_schedule_section(const std::string& rate) {
  Section s;
  s.key = "lr_schedule";
  s.help = fmt::format(
      "How {} changes with the round t (0-based), a function of t alone (docs/algorithms.md "
      "§1.4). A linear warmup multiplies any of them.",
      rate);
  s.default_component = "constant";
  s.components = {
      {"constant", "the rate is lr every round", {}},
      {"step",
       "lr times factor^k, k = the milestones m with m <= t: milestone m lowers the rate from "
       "round m + 1 (1-based) on",
       {opt_int_list("milestones", "[]",
                     "rounds after which the rate is multiplied by factor; strictly increasing, "
                     "each below rounds",
                     1),
        opt_float("factor", 0.1, "what each milestone multiplies the rate by", 0, INFINITY, true)}},
      {"cosine",
       "min_lr + (lr - min_lr) (1 + cos(pi (t - W) / (rounds - W))) / 2 after the W warmup "
       "rounds",
       {opt_float("min_lr", 0.0, "the floor the rate decays towards (at most lr)", 0)}},
      {"inverse_time",
       "lr a / (a + t): the 1/t decay of SGD on strongly convex objectives, eta_t = "
       "gamma / (lambda (t + a)) with lr = gamma / (lambda a)",
       {opt_float("shift", 1.0, "a > 0: the rounds over which the rate halves first", 0, INFINITY,
                  true)}},
  };
  s.options = {
      opt_int("warmup_rounds", 0,
              "W: the rate of round t < W is multiplied by s + (1 - s) t / W, s = "
              "warmup_start_factor; 0: no warmup; less than rounds",
              0),
      opt_float("warmup_start_factor", 0.0, "s: the share of the rate the first round uses", 0, 1),
  };
  return s;
}

LrSchedule LrSchedule::from_config(const Config& cfg, const std::string& path, double lr,
                                   const std::string& lr_key) {
  LrSchedule s(lr);
  const std::string name = cfg.get_string(path + ".name");
  s.rounds_ = cfg.get_int("rounds");
  s.warmup_rounds_ = cfg.get_int(path + ".warmup_rounds");
  s.warmup_start_ = cfg.get_float(path + ".warmup_start_factor");
  require_usage(s.warmup_rounds_ < s.rounds_,
                fmt::format("{}.warmup_rounds = {} must be less than rounds = {}", path,
                            s.warmup_rounds_, s.rounds_));
  if (name == "step") {
    s.kind_ = Kind::kStep;
    s.milestones_ = cfg.get_int_list(path + ".milestones");
    s.factor_ = cfg.get_float(path + ".factor");
    require_usage(!s.milestones_.empty(),
                  fmt::format("{}.name = step needs {}.milestones: a list of rounds, e.g. "
                              "[50, 75]",
                              path, path));
    for (std::size_t i = 0; i < s.milestones_.size(); ++i) {
      const long long m = s.milestones_[i];
      require_usage(i == 0 || m > s.milestones_[i - 1],
                    fmt::format("{}.milestones must be strictly increasing: {} follows {}", path, m,
                                s.milestones_[i - 1]));
      require_usage(m < s.rounds_,
                    fmt::format("{}.milestones: {} is not below rounds = {}, so it would never "
                                "apply",
                                path, m, s.rounds_));
    }
  } else if (name == "inverse_time") {
    s.kind_ = Kind::kInverseTime;
    s.shift_ = cfg.get_float(path + ".shift");
  } else if (name == "cosine") {
    s.kind_ = Kind::kCosine;
    s.min_lr_ = cfg.get_float(path + ".min_lr");
    require_usage(s.min_lr_ <= lr, fmt::format("{}.min_lr = {} exceeds {} = {}: the floor must "
                                               "be at most the rate",
                                               path, s.min_lr_, lr_key, lr));
  }
  return s;
}

double LrSchedule::at(long long t) const {
  double rate = lr_;
  switch (kind_) {
    case Kind::kConstant:
      break;
    case Kind::kStep:
      for (long long m : milestones_)
        if (m <= t) rate *= factor_;  // one multiplication per milestone, in order
      break;
    case Kind::kCosine:
      if (t >= warmup_rounds_) {
        const double p =
            static_cast<double>(t - warmup_rounds_) / static_cast<double>(rounds_ - warmup_rounds_);
        rate = min_lr_ + (lr_ - min_lr_) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
      }
      break;
    case Kind::kInverseTime:
      rate = lr_ * shift_ / (shift_ + static_cast<double>(t));
      break;
  }
  if (t < warmup_rounds_)
    rate *= warmup_start_ +
            (1.0 - warmup_start_) * static_cast<double>(t) / static_cast<double>(warmup_rounds_);
  return rate;
}

}  // namespace cohort::algo
