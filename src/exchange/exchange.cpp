// make_exchange: the exchange plan's class from the resolved options (Note [Exchange plans]).
#include "exchange/exchange.h"

#include <stdexcept>
#include <string>
#include <utility>

#include "exchange/gather.h"
#include "exchange/powersgd_reduce.h"
#include "exchange/reduce.h"
#include "exchange/shard.h"

namespace cohort::exchange {

std::unique_ptr<Exchange> make_exchange(ExchangeOptions o, comm::Communicator& comm,
                                        const std::vector<LayerView>& layers, std::uint64_t seed,
                                        int num_clients, ClientStore& store) {
  if (o.powersgd_reduce())
    return std::make_unique<PowerSgdReduceExchange>(std::move(o), comm, layers, seed, num_clients, store);
  const std::string aggregator = robust::aggregator_name(o.aggregator);
  if (!o.robust_rule()) {
    if (o.plan == Plan::kShard)
      throw std::logic_error("the shard plan runs robust rules, not the sum " + aggregator);
    if (o.plan == Plan::kGather)
      return std::make_unique<GatherExchange>(std::move(o), comm, layers, seed, num_clients, store,
                                              nullptr);
    return std::make_unique<ReduceExchange>(std::move(o), comm, layers, seed, num_clients, store);
  }
  if (o.plan == Plan::kReduce)
    throw std::logic_error("the robust rule " + aggregator + " needs the gather or shard plan");
  auto rule = robust::make_aggregator(o.rule);
  // auto: the shard plan once a round's messages would not fit the per-rank budget.
  const std::int64_t d = layers.empty() ? 0 : layers.back().offset + layers.back().size();
  if (o.auto_plan && rule->shardable() &&
      static_cast<double>(o.per_round) * static_cast<double>(d) * 4.0 >
          static_cast<double>(o.memory_budget))
    o.plan = Plan::kShard;
  if (o.plan == Plan::kShard)
    return std::make_unique<ShardExchange>(std::move(o), comm, layers, seed, num_clients, store,
                                           std::move(rule));
  return std::make_unique<GatherExchange>(std::move(o), comm, layers, seed, num_clients, store,
                                          std::move(rule));
}

}  // namespace cohort::exchange
