// The exchange step of a round (docs/architecture.md "Exchange plans"): client messages ->
// (error feedback, compression, real encoding) -> transport -> the aggregate g.
//
// Note [Exchange plans]
//  - reduce: each rank decodes its own clients' messages and adds them (times their weights)
//    into a block-scaled fixed-point sum (Note [Deterministic sums] in core/block_sum.h: a max
//    all-reduce of one small integer pair per 4096 coordinates, then an integer all-reduce of
//    8 bytes per coordinate), into float32 sums (comm.sum = float: a float all-reduce, results
//    that depend on the rank count) or, for the majority vote, into integer vote counts.
//  - gather: each rank all-gathers the encoded messages of its clients; every rank decodes all
//    of them in client order and aggregates the same way. For the linear aggregators it gives
//    bitwise the same g as reduce (a test holds it to that); it is the plan non-linear
//    aggregators will need.
//  - shard: robust rules on messages too large for one rank (n d 4 bytes above
//    comm.memory_budget_mib). Each rank decodes its own clients' messages and cuts them into
//    coordinate blocks that start on chunk boundaries (Note [Chunked sums]); one all-to-all
//    gives every rank all messages on its block; the rule runs on the block (Gram sums through
//    the chunk tree) and the output blocks are all-gathered. A rank holds n_local d + n d / P
//    message values instead of n d. Non-finite messages are dropped by the rank that owns them,
//    before the all-to-all. The output is bitwise the gather plan's at any rank count.
//  - PowerSGD in mode reduce: sum_i M_i Q is all-reduced, orthonormalised on every rank, then
//    sum_i w_i M_i^T P_hat / sum_i w_i is all-reduced; g = P_hat Q^T. Each rank keeps its sampled
//    clients' M_i between the two all-reduces (memory O(n_local d) for that round).
// Uplink bits are the encoded sizes; for PowerSGD in mode reduce, r'(rows + cols) float32 per
// matrix layer plus the other layers as float32 (what each client puts on the wire).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "compress/compressor.h"
#include "core/config.h"
#include "core/block_sum.h"
#include "core/exact_sum.h"
#include "core/state.h"
#include "robust/aggregator.h"

namespace cohort::algo {

// comm.sum: how the reduce and gather plans add messages.
enum class SumMode { kExact, kFloat };
// The exchange plan in use (Note [Exchange plans]); comm.plan = auto is resolved to one of them.
enum class Plan { kReduce, kGather, kShard };
const char* plan_name(Plan p);

struct ExchangeOptions {
  compress::CompressorOptions compressor;
  bool global_scope = false;
  bool error_feedback = false;
  std::string aggregator = "mean";  // mean | majority | a robust rule (robust.name)
  bool weighted = false;
  bool robust = false;              // aggregator is a robust rule (gather plan)
  robust::AggregatorOptions rule;
  Plan plan = Plan::kReduce;        // auto resolved
  SumMode sum = SumMode::kExact;    // Note [Deterministic sums]; float: rank-count dependent
  bool auto_plan = false;           // plan was auto: a robust rule may still move to shard
  std::int64_t memory_budget = 0;   // bytes of one round's messages a rank may hold (auto)
  int per_round = 0;                // clients per round
  // Reads compressor.*, aggregator.*, comm.plan; rejects impossible combinations, including
  // a robust rule that cannot run on the configured clients per round.
  static ExchangeOptions from_config(const Config& cfg);
};

// Finishes a block sum (Note [Deterministic sums], "The transport"): over the ranks of comm, or
// locally (comm == nullptr) when this process added every term. out[i] = sum_i / divisor.
// Returns false when a term was invalid on this rank.
bool finish_block_sum(BlockSum& sum, comm::Communicator* comm, float* out, double divisor);

class Exchange {
 public:
  Exchange(ExchangeOptions o, comm::Communicator& comm,
           const std::vector<model::LayerView>& layers, std::uint64_t seed, int num_clients);
  std::string describe() const;
  bool majority() const { return o_.aggregator == "majority"; }

  // Starts a round whose sampled clients are `sampled` (sorted ascending, as sample_clients
  // gives them); empty: every client 0..num_clients-1. Per-round work and the bits all-reduce
  // are O(sampled clients), never O(population) (Note [Population scale] in runner.cpp).
  void begin_round(std::uint32_t round, std::span<const int> sampled = {});
  // Client c's uncompressed message (overwritten: used as scratch) with aggregation weight w.
  // Byzantine clients keep no error-feedback memory.
  void submit(int c, std::span<float> message, double weight, bool byzantine = false);
  // Collective: g (d floats) <- the aggregate of the round's messages; total_weight is the sum
  // of all sampled clients' weights. Returns false when a message was not finite or too large.
  bool finish(float* g, double total_weight);

  // After finish: encoded uplink bits of each sampled client, in the order of the round's
  // sample (0 for a sampled client that sent nothing).
  const std::vector<std::int64_t>& client_bits() const { return bits_; }
  std::int64_t uplink_bits() const;
  // Per-client state floats the exchange keeps for a client it has seen: error-feedback memory
  // (d, when enabled) and the compressor's state (Note [Client state account] in setup.h).
  std::int64_t error_floats_per_client() const { return o_.error_feedback ? d_ : 0; }
  std::int64_t compressor_floats_per_client() const;
  // Error-feedback memory of a client this rank owns (empty when it has none).
  std::span<const float> error_memory(int c) const;
  // Robust rules: what the last finish() selected and dropped (identical on every rank).
  const robust::Report& report() const { return report_; }
  // The state carried between rounds (Note [Checkpoints]): the sums' scales, PowerSGD's warm
  // start, the robust rule's state (whole, also under the shard plan: collective there) and, as
  // client slots, the error memory and compressor state of the clients this rank owns. load
  // keeps the client rows `owns` accepts.
  void save(StateBundle& b) const;
  void load(const StateBundle& b, const std::function<bool(int)>& owns);
  // zeno: the server's validation loss L(y) for the current round, and the model x.
  void set_validation(std::function<double(const float*)> loss, const float* x) {
    validation_loss_ = std::move(loss);
    x_ = x;
  }

 private:
  void accumulate(std::span<const float> decoded, double weight);
  // The reduce plan's all-reduce (reduce = true) or the gather plan's local finish of the sum.
  bool finish_sum(float* g, double total_weight, bool reduce);
  bool finish_reduce(float* g, double total_weight);
  bool finish_gather(float* g, double total_weight);
  bool finish_powersgd(float* g, double total_weight);
  bool finish_robust(float* g, const std::vector<std::vector<std::uint8_t>>& inboxes);
  bool finish_shard(float* g);
  // Coordinates [lo, hi) of rank r's block under the shard plan.
  std::pair<std::int64_t, std::int64_t> shard_block(int r) const;
  std::span<float> client_state(int c);
  // Client c's slot in the round's sample.
  std::size_t slot(int c) const;

  ExchangeOptions o_;
  comm::Communicator& comm_;
  std::vector<compress::LayerShape> layers_;
  std::unique_ptr<compress::Compressor> compressor_;
  std::uint64_t seed_;
  std::uint32_t round_ = 0;
  std::int64_t d_;
  bool powersgd_reduce_;
  std::unordered_map<int, std::vector<float>> error_, state_;
  std::vector<std::int64_t> bits_;  // per slot of the round's sample
  std::vector<int> sampled_;        // the round's sample (slot -> client)
  int num_clients_;
  BlockSum sum_;
  std::vector<float> float_sum_;  // comm.sum = float
  std::vector<std::int32_t> votes_;
  bool decoded_finite_ = true;
  bool messages_finite_ = true;
  std::vector<float> decoded_;
  std::vector<std::uint8_t> outbox_;  // gather: [client u32][bits u64][weight f64][bytes]...
  struct Pending {
    int client;
    double weight;
    std::vector<float> m;
    bool byzantine;
  };
  std::vector<Pending> pending_;  // PowerSGD reduce
  std::vector<std::vector<float>> q_prev_;
  std::unique_ptr<robust::Aggregator> rule_;
  robust::Report report_;
  std::function<double(const float*)> validation_loss_;
  const float* x_ = nullptr;
  std::vector<float> matrix_;  // gather + robust rule: the round's decoded messages, n x d
  // shard: this rank's messages cut into blocks (one buffer per destination rank), and what
  // each row is: [client u32][weight f64][finite u8] in submission order.
  std::vector<std::vector<float>> blocks_;
  std::vector<std::uint8_t> shard_meta_;
};

// The model broadcast. With downlink_compressor none, clients receive x itself (32 d bits per
// client). Otherwise the server sends C(x - x_hat) and every client's copy becomes
// x_hat += decode(...) (x_hat starts as the initial model, which clients generate from the seed).
class Downlink {
 public:
  Downlink(const Config& cfg, const std::vector<model::LayerView>& layers, std::uint64_t seed,
           std::span<const float> x0);
  // The model the round's clients train from; *bits = encoded size of one broadcast message.
  std::span<const float> broadcast(std::span<const float> x, std::uint32_t round,
                                   std::int64_t* bits);
  std::string describe() const;
  void save(StateBundle& b) const;  // Note [Checkpoints]
  void load(const StateBundle& b);

 private:
  std::unique_ptr<compress::Compressor> compressor_;
  std::vector<compress::LayerShape> layers_;
  std::uint64_t seed_;
  std::vector<float> x_hat_, diff_, decoded_, state_;
};

// The downlink stream's client id (Note [Compression streams]).
inline constexpr std::uint32_t kDownlinkClient = 0xFFFFFFFEu;

}  // namespace cohort::algo
