// The readers of the exchange's options (exchange/options.h).
#include "exchange/options.h"

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "algo/sampling.h"
#include "core/errors.h"

namespace cohort::exchange {

const char* plan_name(Plan p) {
  switch (p) {
    case Plan::kGather:
      return "gather";
    case Plan::kShard:
      return "shard";
    default:
      return "reduce";
  }
}

ExchangeOptions ExchangeOptions::from_config(const Config& cfg) {
  using robust::AggregatorKind;
  ExchangeOptions o;
  o.compressor = compress::compressor_options(cfg, compress::kUplinkSlot);
  o.global_scope = cfg.get_string("compressor.scope") == "global";
  o.error_feedback = cfg.get_bool("compressor.error_feedback");
  const std::string aggregator = cfg.get_string("aggregator.name");  // for the messages below
  o.aggregator = robust::aggregator_kind(aggregator);
  o.weighted = o.aggregator == AggregatorKind::kMean && cfg.get_bool("aggregator.weighted");
  const bool robust = o.robust_rule();
  const long long bucketing = cfg.get_int("aggregator.bucketing");
  if (!robust)
    require_usage(bucketing <= 1, "aggregator.bucketing wraps robust rules (cm, tm, krum, "
                                  "multikrum, gm, cclip, bulyan, zeno), not " + aggregator);
  std::string plan = cfg.get_string("comm.plan");
  o.memory_budget = cfg.get_int("comm.memory_budget_mib") * (std::int64_t{1} << 20);
  o.per_round =
      algo::clients_per_round(cfg, static_cast<int>(cfg.get_int("clients.num_clients")));
  if (!robust)
    require_usage(plan != "shard",
                  "comm.plan = shard splits messages into coordinate blocks for a robust "
                  "aggregator (cm, tm, krum, multikrum, gm, cclip, bulyan); " + aggregator +
                      " is a sum: use comm.plan = reduce (or auto)");
  if (robust) {
    o.rule = robust::aggregator_options(cfg);
    require_usage(plan != "reduce",
                  "aggregator " + aggregator + " is not a sum: it needs comm.plan = gather, "
                  "shard or auto, not reduce");
    require_usage(plan != "shard" || robust::make_aggregator(o.rule)->shardable(),
                  "aggregator " + aggregator + " evaluates a validation loss on each whole "
                  "message, so it cannot run on coordinate blocks: use comm.plan = gather (or "
                  "auto)");
    // minmax / minsum put every honest message on every rank (O(n d) memory), which the shard
    // plan exists to avoid: refuse the pair, and keep plan auto on gather for them.
    const std::string attack = cfg.get_string("attack.name");
    const bool gathers_honest = attack == "minmax" || attack == "minsum";
    require_usage(plan != "shard" || !gathers_honest,
                  "attack " + attack + " needs every honest message on every rank (O(n d) "
                  "memory per rank), which comm.plan = shard is meant to avoid: use comm.plan = "
                  "gather (or auto), or an attack built on coordinate-wise statistics (alie, ipm, "
                  "mimic)");
    o.auto_plan = plan == "auto" && !gathers_honest;
    if (plan != "shard") plan = "gather";
    // Config-time precondition on the messages each round brings (after bucketing).
    const int n =
        algo::clients_per_round(cfg, static_cast<int>(cfg.get_int("clients.num_clients")));
    const int inputs = o.rule.bucket > 1 ? (n + o.rule.bucket - 1) / o.rule.bucket : n;
    try {  // the bucketing wrapper's own check divides n into buckets
      robust::make_aggregator(o.rule)->check_inputs(n);
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("with {} clients per round{}: {}", n,
                                   o.rule.bucket > 1
                                       ? fmt::format(" in buckets of {} ({} inputs)", o.rule.bucket, inputs)
                                       : std::string(),
                                   e.what()));
    }
  }
  const bool power_reduce = o.powersgd_reduce();
  if (o.aggregator == AggregatorKind::kMajority)
    require_usage(o.compressor.name == "sign",
                  "aggregator.name = majority votes on signs: it needs compressor.name = sign (got " +
                      o.compressor.name + ")");
  if (power_reduce) {
    require_usage(o.aggregator == AggregatorKind::kMean || o.aggregator == AggregatorKind::kQffl,
                  "compressor powersgd with mode reduce produces only the mean of the messages: "
                  "use aggregator.name = mean, or compressor.mode = per_client with " +
                      aggregator);
    require_usage(plan != "gather",
                  "compressor powersgd with mode reduce all-reduces P and Q: use comm.plan = reduce "
                  "(or auto), or compressor.mode = per_client with comm.plan = gather");
  }
  o.plan = plan == "gather" ? Plan::kGather : plan == "shard" ? Plan::kShard : Plan::kReduce;
  o.sum = cfg.get_string("comm.sum") == "float" ? SumMode::kFloat : SumMode::kExact;
  require_usage(!(o.compressor.name == "powersgd" && o.global_scope),
                "compressor powersgd with scope global sees one d x 1 vector, which it cannot "
                "compress: use scope layer");
  return o;
}

}  // namespace cohort::exchange
