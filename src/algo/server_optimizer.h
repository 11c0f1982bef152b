// Server optimizers: how the aggregate g moves the global model x (docs/algorithms.md §1).
// Every rank holds the same x and g and applies the same update, so no broadcast is needed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algo/schedule.h"
#include "core/config.h"
#include "core/registration.h"
#include "core/state.h"

namespace cohort::algo {

class ServerOptimizer {
 public:
  virtual ~ServerOptimizer() = default;
  virtual std::string name() const = 0;
  // x <- update(x, g) at rate lr (the schedule's rate of the round); t counts calls from 1.
  virtual void step(float* x, const float* g, std::int64_t d, double lr) = 0;
  // The state carried between steps (Note [Checkpoints]); none for plain SGD.
  virtual void save(StateBundle&) const {}
  virtual void load(const StateBundle&) {}
};

struct ServerOptimizerOptions {
  std::string name = "sgd";
  double lr = 1.0;
  LrSchedule schedule{1.0};       // the rate of round t, from server_optimizer.lr_schedule
  double beta = 0.9;              // momentum, nesterov
  bool heavy_ball = false;        // momentum form
  double beta1 = 0.9, beta2 = 0.99, eps = 1e-3;  // adam, yogi
  bool bias_correction = false;
  // server_optimizer.name, the options the named optimizer declares and its lr_schedule.
  static ServerOptimizerOptions from_config(const Config& cfg);
};

using ServerOptimizerRegistration =
    Registration<std::unique_ptr<ServerOptimizer>(const ServerOptimizerOptions&),
                 Field<ServerOptimizerOptions>>;

// The server optimizers (one explicit list, Note [Registration]) and their slot's schema.
const std::vector<ServerOptimizerRegistration>& server_optimizers();
Section server_optimizer_section();

std::unique_ptr<ServerOptimizer> make_server_optimizer(const ServerOptimizerOptions& o);

}  // namespace cohort::algo
