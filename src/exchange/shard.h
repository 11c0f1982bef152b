// The shard plan (Note [Exchange plans] in exchange/exchange.h): a robust rule on coordinate
// blocks. Each rank decodes its own clients' messages and cuts them into blocks on chunk
// boundaries (Note [Chunked sums]); one all-to-all gives every rank all messages on its block;
// the rule runs on the block and the output blocks are all-gathered.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "exchange/base.h"
#include "robust/aggregator.h"

namespace cohort::exchange {

class ShardExchange final : public ExchangeBase {
 public:
  // rule: the robust rule o names; shardable() (zeno is not).
  ShardExchange(ExchangeOptions o, comm::Communicator& comm, const std::vector<LayerView>& layers,
                std::uint64_t seed, int num_clients, ClientStore& store, std::unique_ptr<robust::Aggregator> rule);
  std::string describe() const override;
  void submit(int c, std::span<float> message, double weight, bool byzantine) override;

 private:
  void start_round() override;
  bool finish_round(float* g, double total_weight) override;
  // The rule's state, whole in the bundle (every rank's block: collective), the rank's block in
  // the rule.
  void save_state(StateBundle& b) const override;
  void load_state(const StateBundle& b) override;
  // Coordinates [lo, hi) of rank r's block.
  std::pair<std::int64_t, std::int64_t> shard_block(int r) const;

  std::unique_ptr<robust::Aggregator> rule_;
  // This rank's messages cut into blocks (one buffer per destination rank), and what each row
  // is: [client u32][weight f64][finite u8] in submission order.
  std::vector<std::vector<float>> blocks_;
  std::vector<std::uint8_t> shard_meta_;
  std::vector<float> matrix_;  // all finite messages on this rank's block, n x (hi - lo)
};

}  // namespace cohort::exchange
