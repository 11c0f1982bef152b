// The gather plan (Note [Exchange plans] in exchange/exchange.h): each rank all-gathers its
// clients' encoded messages; every rank decodes all of them in client order and aggregates them:
// a sum, as the reduce plan does, or a robust rule on the round's n x d messages.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "exchange/base.h"
#include "exchange/message_sum.h"
#include "robust/aggregator.h"

namespace cohort::exchange {

class GatherExchange final : public ExchangeBase {
 public:
  // rule: the robust rule o names (o.robust_rule()), or null for a sum (mean, majority).
  GatherExchange(ExchangeOptions o, comm::Communicator& comm, const std::vector<LayerView>& layers,
                 std::uint64_t seed, int num_clients, ClientStore& store, std::unique_ptr<robust::Aggregator> rule);
  std::string describe() const override;
  void submit(int c, std::span<float> message, double weight, bool byzantine) override;

 private:
  void start_round() override;
  bool finish_round(float* g, double total_weight) override;
  bool finish_robust(float* g, const std::vector<std::vector<std::uint8_t>>& inboxes);
  void save_state(StateBundle& b) const override;
  void load_state(const StateBundle& b) override;

  std::optional<MessageSum> sum_;             // a sum
  std::unique_ptr<robust::Aggregator> rule_;  // or a robust rule
  std::vector<std::uint8_t> outbox_;  // [client u32][bits u64][weight f64][nbytes u64][bytes]...
  std::vector<float> matrix_;         // robust rule: the round's decoded messages, n x d
};

}  // namespace cohort::exchange
