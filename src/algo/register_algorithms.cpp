// The algorithm registry: one explicit list (Note [Registration]); each algorithm declares its
// options and factory in its own file.
#include "algo/algorithm.h"
#include "algo/fedavg.h"
#include "algo/sgd.h"

namespace cohort::algo {

const std::vector<AlgorithmRegistration>& algorithms() {
  static const std::vector<AlgorithmRegistration> list = {sgd_registration(),
                                                          fedavg_registration()};
  return list;
}

Section algorithm_section() {
  Section s =
      slot_section("algorithm", "What sampled clients compute each round (docs/algorithms.md §1).",
                   "fedavg", algorithms());
  // Read by the client behaviour (algo/clients.cpp), whatever the algorithm.
  s.options = {
      opt_float("client_momentum", 0.0,
                "worker momentum beta: a client sends m_i instead of u_i (0: off)", 0, 1),
      opt_enum("momentum_form", "ema", {"ema", "heavy_ball"},
               "ema: m_i <- beta m_i + (1-beta) u_i; heavy_ball: m_i <- beta m_i + u_i; "
               "m_i = 0 before a client's first participation (first message (1-beta) u_i, or "
               "u_i in heavy_ball form)"),
  };
  return s;
}

std::unique_ptr<Algorithm> make_algorithm(const Config& cfg, std::int64_t num_params) {
  const std::string name = cfg.get_string("algorithm.name");
  const auto* r = find_registration(algorithms(), name);
  if (r == nullptr) throw std::logic_error("unknown algorithm " + name);
  return r->make(cfg, num_params);
}

}  // namespace cohort::algo
