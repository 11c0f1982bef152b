#include "algo/averaging.h"

#include <cmath>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/registration.h"

namespace cohort::algo {

Section averaging_section() {
  using R = Registration<void()>;
  static const std::vector<R> list = {
      {"none", "evaluate the last model", {}, {}},
      {"weighted",
       "evaluate x̄ = sum_t w_t x_t / sum_t w_t over the models after rounds t > start, w_t = "
       "(shift + t)^power (Note [Iterate averaging])",
       {opt_float("power", 2.0, "p: 0 is the uniform average, 2 Mem-SGD's", 0),
        opt_float("shift", 0.0, "a: the weights' offset, w_t = (a + t)^p", 0),
        opt_int("start", 0, "s: the rounds 1..s are not averaged", 0)},
       {}},
  };
  return slot_section("averaging",
                      "Iterate averaging: which model the evaluations use (docs/algorithms.md "
                      "§1.5).",
                      "none", list);
}

IterateAverage IterateAverage::from_config(const Config& cfg, std::int64_t d) {
  IterateAverage a;
  if (cfg.get_string("averaging.name") != "weighted") return a;
  a.enabled_ = true;
  a.power_ = cfg.get_float("averaging.power");
  a.shift_ = cfg.get_float("averaging.shift");
  a.start_ = cfg.get_int("averaging.start");
  require_usage(a.start_ < cfg.get_int("rounds"),
                fmt::format("averaging.start = {} leaves no round to average: it must be below "
                            "rounds = {}",
                            a.start_, cfg.get_int("rounds")));
  a.sum_.assign(static_cast<std::size_t>(d), 0.0);
  return a;
}

double IterateAverage::weight(long long t) const {
  return std::pow(shift_ + static_cast<double>(t), power_);
}

void IterateAverage::add(const std::vector<float>& x, long long t) {
  if (!enabled_ || t <= start_) return;
  const double w = weight(t);
  for (std::size_t k = 0; k < sum_.size(); ++k) sum_[k] += w * static_cast<double>(x[k]);
  total_ += w;
}

void IterateAverage::read(std::vector<float>& out) const {
  out.resize(sum_.size());
  for (std::size_t k = 0; k < sum_.size(); ++k) out[k] = static_cast<float>(sum_[k] / total_);
}

std::string IterateAverage::describe() const {
  if (!enabled_) return "none";
  return fmt::format("weighted, w_t = ({} + t)^{}{}", shift_, power_,
                     start_ > 0 ? fmt::format(" after round {}", start_) : std::string());
}

void IterateAverage::save(StateBundle& b) const {
  if (!enabled_) return;
  b.f64["averaging/sum"] = sum_;
  b.f64["averaging/total"] = {total_};
}

void IterateAverage::load(const StateBundle& b, const std::string& source) {
  if (!enabled_) return;
  const auto& sum = b.get_f64("averaging/sum");
  require_usage(sum.size() == sum_.size(),
                fmt::format("checkpoint {} holds an average of {} parameters; this run has {}",
                            source, sum.size(), sum_.size()));
  sum_ = sum;
  total_ = b.get_f64("averaging/total").at(0);
}

}  // namespace cohort::algo
