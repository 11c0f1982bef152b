#include "app/privacy_cmd.h"

#include <cmath>

#include <fmt/format.h>

#include "core/errors.h"
#include "privacy/accountant.h"

namespace cohort {

void add_privacy_command(CLI::App& app, PrivacyCommandOptions& o) {
  auto* c = app.add_subcommand(
      "privacy",
      "epsilon(delta) of the sampled Gaussian mechanism over T steps (RDP accountant), or the "
      "noise multiplier for a target epsilon");
  c->add_option("--q", o.q, "sampling rate q in (0, 1]")->required();
  c->add_option("--steps", o.steps, "number of steps (rounds) T >= 1")->required();
  c->add_option("--sigma", o.sigma, "noise multiplier sigma >= 0 (noise std / clipping bound)");
  c->add_option("--delta", o.delta, "delta in (0, 1)")->capture_default_str();
  c->add_option("--target-epsilon", o.target,
                "instead of --sigma: print the smallest sigma whose epsilon is at most this");
}

int run_privacy_command(const PrivacyCommandOptions& o) {
  require_usage(o.q > 0 && o.q <= 1, fmt::format("--q = {} is not allowed: the sampling rate must "
                                                 "be in (0, 1]",
                                                 o.q));
  require_usage(o.steps >= 1, fmt::format("--steps = {} is not allowed: at least 1", o.steps));
  require_usage(o.delta > 0 && o.delta < 1,
                fmt::format("--delta = {} is not allowed: delta must be in (0, 1)", o.delta));
  const bool calibrate = o.target != 0;
  require_usage(calibrate != (o.sigma >= 0),
                "give exactly one of --sigma (to compute epsilon) and --target-epsilon (to "
                "compute sigma)");
  if (calibrate) {
    require_usage(o.target > 0 && std::isfinite(o.target),
                  fmt::format("--target-epsilon = {} is not allowed: it must be > 0", o.target));
    const double sigma = privacy::calibrate_sigma(o.q, o.steps, o.delta, o.target);
    const auto e = privacy::epsilon(o.q, sigma, o.steps, o.delta);
    fmt::print("sigma {:.6g} gives epsilon {:.6g} at delta {:g} (order {}) for q = {:g}, {} steps\n",
               sigma, e.epsilon, o.delta, e.order, o.q, o.steps);
    return 0;
  }
  const auto e = privacy::epsilon(o.q, o.sigma, o.steps, o.delta);
  fmt::print("epsilon {:.6g} at delta {:g} (order {}) for q = {:g}, sigma = {:g}, {} steps\n",
             e.epsilon, o.delta, e.order, o.q, o.sigma, o.steps);
  return 0;
}

}  // namespace cohort
