// The exchange's options and the readers that fill them from the config (compressor.*,
// downlink_compressor.*, aggregator.*, comm.*): the one place where the exchange meets config
// strings; everything past here compares enums.
#pragma once

#include <cstdint>
#include <string>

#include "compress/compressor.h"
#include "core/config.h"
#include "robust/aggregator.h"

namespace cohort::exchange {

// comm.sum: how the reduce and gather plans add messages.
enum class SumMode { kExact, kFloat };
// The exchange plan in use (Note [Exchange plans] in exchange/exchange.h); comm.plan = auto is
// resolved to one of them.
enum class Plan { kReduce, kGather, kShard };
const char* plan_name(Plan p);

struct ExchangeOptions {
  compress::CompressorOptions compressor;
  bool global_scope = false;
  bool error_feedback = false;
  robust::AggregatorKind aggregator = robust::AggregatorKind::kMean;  // aggregator.name
  bool weighted = false;
  robust::AggregatorOptions rule;   // the robust rule's options (robust_rule())
  Plan plan = Plan::kReduce;        // auto resolved
  SumMode sum = SumMode::kExact;    // Note [Deterministic sums]; float: rank-count dependent
  bool auto_plan = false;           // plan was auto: a robust rule may still move to shard
  std::int64_t memory_budget = 0;   // bytes of one round's messages a rank may hold (auto)
  int per_round = 0;                // clients per round
  // The aggregator is a robust rule (gather or shard plan), not one of the sums.
  bool robust_rule() const { return robust::is_robust(aggregator); }
  // PowerSGD in mode reduce, which has a plan of its own (all-reduces of P and Q).
  bool powersgd_reduce() const {
    return compressor.name == "powersgd" && compressor.mode == "reduce";
  }
  // Reads compressor.*, aggregator.*, comm.plan; rejects impossible combinations, including
  // a robust rule that cannot run on the configured clients per round.
  static ExchangeOptions from_config(const Config& cfg);
};

}  // namespace cohort::exchange
