// The algorithm registry: one explicit list (Note [Registration]); each algorithm declares its
// options and factory in its own file.
#include <cmath>

#include "algo/algorithm.h"
#include "algo/fedavg.h"
#include "algo/mime.h"
#include "algo/scaffold.h"
#include "algo/schedule.h"
#include "algo/sgd.h"
#include "decentral/network.h"

namespace cohort::algo {

const std::vector<AlgorithmRegistration>& algorithms() {
  static const std::vector<AlgorithmRegistration> list = {
      sgd_registration(),      fedavg_registration(), fedprox_registration(),
      scaffold_registration(), mime_registration(),   mimelite_registration(),
      // Decentralized (docs/algorithms.md §5): built by decentral::Network, not make_algorithm.
      {"gossip", "decentralized: every node averages its model with its neighbours' (no training)",
       decentral::gossip_options(), {}},
      {"dsgd", "decentralized SGD: K local steps and gossip with the neighbours, each node its "
               "own model", decentral::dsgd_options(), {}},
      {"choco_gossip", "decentralized: compressed gossip on public copies x_hat (Choco-Gossip)",
       decentral::choco_gossip_options(), {}},
      {"choco_sgd", "decentralized: local steps, then a Choco-Gossip step (Choco-SGD)",
       decentral::choco_sgd_options(), {}},
      {"naive_gossip", "decentralized: gossip of compressed models, x_i += gamma sum_j w_ij "
                       "(Q(x_j) - Q(x_i)) (the baseline Choco improves on)",
       decentral::naive_gossip_options(), {}},
      {"gradient_tracking", "decentralized gradient tracking (DIGing): gossip of x and of the "
                            "tracked gradient y", decentral::gradient_tracking_options(), {}}};
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
      // Read by GradientOptions, below, for every algorithm's clients.
      opt_float("weight_decay", 0.0,
                "L2 weight decay lambda: a client uses g + lambda y for its minibatch gradient g "
                "at y (sgd: at the model it received); 0: off",
                0),
      opt_float("clip_norm", 0.0,
                "clip each minibatch gradient to Euclidean norm at most c before weight decay; "
                "0: off",
                0),
  };
  s.children = {lr_schedule_section("the local steps' algorithm.local_lr")};
  return s;
}

GradientOptions GradientOptions::from_config(const Config& cfg) {
  return GradientOptions{cfg.get_float("algorithm.weight_decay"),
                         cfg.get_float("algorithm.clip_norm")};
}

void GradientOptions::apply(float* g, const float* y, std::int64_t d) const {
  if (clip_norm > 0) {
    double sq = 0;
    for (std::int64_t i = 0; i < d; ++i) sq += static_cast<double>(g[i]) * g[i];
    const double norm = std::sqrt(sq);
    if (norm > clip_norm) {
      const double scale = clip_norm / norm;
      for (std::int64_t i = 0; i < d; ++i) g[i] = static_cast<float>(g[i] * scale);
    }
  }
  if (weight_decay > 0)
    for (std::int64_t i = 0; i < d; ++i) g[i] = static_cast<float>(g[i] + weight_decay * y[i]);
}

std::vector<LayerView> message_layers(const std::vector<LayerView>& layers,
                                      const std::vector<std::string>& parts) {
  const std::int64_t d = layers.empty() ? 0 : layers.back().offset + layers.back().size();
  std::vector<LayerView> out;
  for (std::size_t p = 0; p < parts.size(); ++p)
    for (const LayerView& l : layers) {
      LayerView v = l;
      if (!parts[p].empty()) v.name = parts[p] + "/" + l.name;
      v.offset += static_cast<std::int64_t>(p) * d;
      out.push_back(std::move(v));
    }
  return out;
}

std::unique_ptr<Algorithm> make_algorithm(const Config& cfg, std::int64_t num_params) {
  const std::string name = cfg.get_string("algorithm.name");
  const auto* r = find_registration(algorithms(), name);
  if (r == nullptr || !r->make) throw std::logic_error("not a client algorithm: " + name);
  return r->make(cfg, num_params);
}

}  // namespace cohort::algo
