#include "exchange/powersgd_reduce.h"

#include <fmt/format.h>

namespace cohort::exchange {

PowerSgdReduceExchange::PowerSgdReduceExchange(ExchangeOptions o, comm::Communicator& comm,
                                               const std::vector<LayerView>& layers,
                                               std::uint64_t seed, int num_clients, ClientStore& store)
    : ExchangeBase(std::move(o), comm, layers, seed, num_clients, store),
      allreduce_(layers_, o_.compressor.rank, o_.compressor.warm_start) {}

std::string PowerSgdReduceExchange::describe() const {
  return fmt::format("reduce (PowerSGD: exact all-reduce of P, then of Q), compressor {}",
                     compressor_description());
}

void PowerSgdReduceExchange::submit(int c, std::span<float> p, double weight, bool byzantine) {
  if (keeps_error(byzantine)) {  // p = u_c + e_c
    const std::span<const float> e = client_error(c);
    for (std::size_t i = 0; i < p.size(); ++i) p[i] += e[i];
  }
  check_message(p);
  set_bits(c, allreduce_.wire_bits());
  pending_.push_back(Pending{c, weight, std::vector<float>(p.begin(), p.end()), byzantine});
}

void PowerSgdReduceExchange::start_round() { pending_.clear(); }

bool PowerSgdReduceExchange::finish_round(float* g, double total_weight) {
  std::vector<PowerSgdAllReduce::Term> terms;
  terms.reserve(pending_.size());
  for (const auto& pend : pending_) terms.push_back({pend.m.data(), pend.weight});
  const bool valid = allreduce_.run(comm_, seed_, round_, terms, total_weight, g);
  // Error feedback against the aggregated approximation: e_i = M_i - P_hat Q^T on matrix
  // layers; the other layers travel exactly, so their error is zero.
  for (const auto& pend : pending_) {
    if (!keeps_error(pend.byzantine)) continue;
    const std::span<float> e = client_error(pend.client);
    std::int64_t offset = 0;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const std::int64_t size = layers_[l].size();
      for (std::int64_t at = offset; at < offset + size; ++at)
        e[at] = allreduce_.layer_rank(l) == 0 ? 0.0f : pend.m[at] - g[at];
      offset += size;
    }
  }
  return valid;
}

void PowerSgdReduceExchange::save_state(StateBundle& b) const { allreduce_.save(b); }

void PowerSgdReduceExchange::load_state(const StateBundle& b) { allreduce_.load(b); }

}  // namespace cohort::exchange
