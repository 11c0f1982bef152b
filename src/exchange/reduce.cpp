#include "exchange/reduce.h"

#include <fmt/format.h>

namespace cohort::exchange {

ReduceExchange::ReduceExchange(ExchangeOptions o, comm::Communicator& comm,
                               const std::vector<LayerView>& layers, std::uint64_t seed,
                               int num_clients, ClientStore& store)
    : ExchangeBase(std::move(o), comm, layers, seed, num_clients, store),
      sum_(o_.aggregator == robust::AggregatorKind::kMajority, o_.sum, d_, max_messages()) {}

std::string ReduceExchange::describe() const {
  const std::string what = compressor_description();
  if (sum_.majority()) return fmt::format("reduce (integer vote counts), compressor {}", what);
  if (sum_.mode() == SumMode::kFloat)
    return fmt::format("reduce (float32 all-reduce of decoded messages: results depend on the "
                       "rank count), compressor {}",
                       what);
  return fmt::format("reduce (exact block-scaled fixed-point all-reduce of decoded messages, "
                     "P = {} bits), compressor {}",
                     sum_.precision(), what);
}

void ReduceExchange::submit(int c, std::span<float> message, double weight, bool byzantine) {
  sum_.add(encode_decode(c, message, byzantine, /*wire=*/nullptr), weight);
}

void ReduceExchange::start_round() { sum_.clear(); }

bool ReduceExchange::finish_round(float* g, double total_weight) {
  return sum_.finish(&comm_, g, total_weight);
}

void ReduceExchange::save_state(StateBundle& b) const { sum_.save(b); }

void ReduceExchange::load_state(const StateBundle& b) { sum_.load(b); }

}  // namespace cohort::exchange
