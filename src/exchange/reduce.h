// The reduce plan (Note [Exchange plans] in exchange/exchange.h): each rank adds its own
// clients' decoded messages into one sum (exact, float32 or majority votes), which the ranks
// all-reduce.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "exchange/base.h"
#include "exchange/message_sum.h"

namespace cohort::exchange {

class ReduceExchange final : public ExchangeBase {
 public:
  // o: a sum (mean or majority), not PowerSGD in mode reduce.
  ReduceExchange(ExchangeOptions o, comm::Communicator& comm, const std::vector<LayerView>& layers,
                 std::uint64_t seed, int num_clients, ClientStore& store);
  std::string describe() const override;
  void submit(int c, std::span<float> message, double weight, bool byzantine) override;

 private:
  void start_round() override;
  bool finish_round(float* g, double total_weight) override;
  void save_state(StateBundle& b) const override;
  void load_state(const StateBundle& b) override;

  MessageSum sum_;
};

}  // namespace cohort::exchange
