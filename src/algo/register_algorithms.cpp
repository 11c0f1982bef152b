// The algorithm registry: one explicit list (docs/architecture.md "Registration"). The names and
// options here are the ones app/schema_def.cpp declares for the `algorithm` slot.
#include "algo/algorithm.h"
#include "algo/fedavg.h"
#include "algo/sgd.h"

namespace cohort::algo {

std::unique_ptr<Algorithm> make_algorithm(const Config& cfg, std::int64_t num_params) {
  const std::string name = cfg.get_string("algorithm.name");
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
  if (name == "sgd") return std::make_unique<SgdAlgorithm>(seed, cfg.get_int("algorithm.batch_size"));
  if (name == "fedavg")
    return std::make_unique<FedAvgAlgorithm>(seed, FedAvgOptions::from_config(cfg), num_params);
  throw std::logic_error("unknown algorithm " + name);
}

}  // namespace cohort::algo
