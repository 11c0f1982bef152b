// The exchange step of a round (docs/architecture.md "Exchange plans"): client messages ->
// (error feedback, compression, real encoding) -> transport -> the aggregate g.
//
// Note [Exchange plans]
//  - reduce (ReduceExchange, exchange/reduce.h): each rank decodes its own clients' messages and
//    adds them (times their weights) into a block-scaled fixed-point sum
//    (Note [Deterministic sums] in core/block_sum.h: a max all-reduce of one small integer pair
//    per 4096 coordinates, then an integer all-reduce of 8 bytes per coordinate), into float32
//    sums (comm.sum = float: a float all-reduce, results that depend on the rank count) or, for
//    the majority vote, into integer vote counts.
//  - gather (GatherExchange, exchange/gather.h): each rank all-gathers the encoded messages of
//    its clients; every rank decodes all of them in client order and aggregates the same way.
//    For the linear aggregators it gives bitwise the same g as reduce (a test holds it to that);
//    it is the plan non-linear aggregators will need.
//  - shard (ShardExchange, exchange/shard.h): robust rules on messages too large for one rank
//    (n d 4 bytes above comm.memory_budget_mib). Each rank decodes its own clients' messages and
//    cuts them into coordinate blocks that start on chunk boundaries (Note [Chunked sums]); one
//    all-to-all gives every rank all messages on its block; the rule runs on the block (Gram sums
//    through the chunk tree) and the output blocks are all-gathered. A rank holds
//    n_local d + n d / P message values instead of n d. Non-finite messages are dropped by the
//    rank that owns them, before the all-to-all. The output is bitwise the gather plan's at any
//    rank count.
//  - PowerSGD in mode reduce (PowerSgdReduceExchange, exchange/powersgd_reduce.h; its
//    collectives in exchange/powersgd_allreduce.h): sum_i M_i Q is all-reduced, orthonormalised
//    on every rank, then sum_i w_i M_i^T P_hat / sum_i w_i is all-reduced; g = P_hat Q^T. Each
//    rank keeps its sampled clients' M_i between the two all-reduces (memory O(n_local d) for
//    that round).
// make_exchange picks the class from the resolved options; what the plans share (the round's
// sample and its bits, the per-client state, the encode/decode path of a message) is
// ExchangeBase (exchange/base.h). Uplink bits are the encoded sizes; for PowerSGD in mode reduce,
// r'(rows + cols) float32 per matrix layer plus the other layers as float32 (what each client
// puts on the wire).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/client_store.h"
#include "core/layers.h"
#include "core/state.h"
#include "exchange/options.h"
#include "robust/aggregator.h"

namespace cohort::exchange {

// One round's exchange, whatever the plan (Note [Exchange plans]).
class Exchange {
 public:
  virtual ~Exchange() = default;
  // The plan and compressor, as printed at start-up and stored in the results file.
  virtual std::string describe() const = 0;

  // Starts a round whose sampled clients are `sampled` (sorted ascending, as sample_clients
  // gives them); empty: every client 0..num_clients-1. Per-round work and the bits all-reduce
  // are O(sampled clients), never O(population) (Note [Population scale] in algo/runner.cpp).
  virtual void begin_round(std::uint32_t round, std::span<const int> sampled = {}) = 0;
  // Client c's uncompressed message (overwritten: used as scratch) with aggregation weight w.
  // Byzantine clients keep no error-feedback memory.
  virtual void submit(int c, std::span<float> message, double weight, bool byzantine = false) = 0;
  // Collective: g (d floats) <- the aggregate of the round's messages; total_weight is the sum
  // of all sampled clients' weights. Returns false when a message was not finite or too large.
  virtual bool finish(float* g, double total_weight) = 0;

  // After finish: encoded uplink bits of each sampled client, in the order of the round's
  // sample (0 for a sampled client that sent nothing).
  virtual const std::vector<std::int64_t>& client_bits() const = 0;
  virtual std::int64_t uplink_bits() const = 0;
  // Error-feedback memory of a client this rank owns (empty when it has none).
  virtual std::span<const float> error_memory(int c) const = 0;
  // Robust rules: what the last finish() selected and dropped (identical on every rank).
  virtual const robust::Report& report() const = 0;
  // The state carried between rounds (Note [Checkpoints]): the sums' scales, PowerSGD's warm
  // start and the robust rule's state (whole, also under the shard plan: collective there). The
  // per-client state (error memory, compressor state) is in the client store given to
  // make_exchange, which saves it itself.
  virtual void save(StateBundle& b) const = 0;
  virtual void load(const StateBundle& b) = 0;
  // zeno: the server's validation loss L(y) for the current round, and the model x.
  virtual void set_validation(std::function<double(const float*)> loss, const float* x) = 0;
};

// The exchange of the plan the options resolve to: PowerSGD in mode reduce, or o.plan, where
// plan auto (o.auto_plan) moves a shardable robust rule to the shard plan once a round's messages
// (clients per round x d x 4 bytes) exceed o.memory_budget. The options are checked by
// ExchangeOptions::from_config; a combination it refuses (a sum on the shard plan, a robust
// rule on the reduce plan) is a logic_error here. The exchange declares its per-client slots
// (error feedback, compressor state) in `store`, which must outlive it.
std::unique_ptr<Exchange> make_exchange(ExchangeOptions o, comm::Communicator& comm,
                                        const std::vector<LayerView>& layers, std::uint64_t seed,
                                        int num_clients, ClientStore& store);

}  // namespace cohort::exchange
