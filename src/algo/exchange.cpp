#include "algo/exchange.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "compress/powersgd.h"
#include "algo/sampling.h"
#include "core/errors.h"
#include "robust/thread_gather.h"

namespace cohort::algo {

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
  ExchangeOptions o;
  o.compressor = compress::compressor_options(cfg, "compressor");
  o.global_scope = cfg.get_string("compressor.scope") == "global";
  o.error_feedback = cfg.get_bool("compressor.error_feedback");
  o.aggregator = cfg.get_string("aggregator.name");
  o.weighted = o.aggregator == "mean" && cfg.get_bool("aggregator.weighted");
  o.robust = o.aggregator != "mean" && o.aggregator != "majority";
  const long long bucketing = cfg.get_int("aggregator.bucketing");
  if (!o.robust)
    require_usage(bucketing <= 1, "aggregator.bucketing wraps robust rules (cm, tm, krum, "
                                  "multikrum, gm, cclip, bulyan, zeno), not " + o.aggregator);
  std::string plan = cfg.get_string("comm.plan");
  o.memory_budget = cfg.get_int("comm.memory_budget_mib") * (std::int64_t{1} << 20);
  o.per_round = clients_per_round(cfg, static_cast<int>(cfg.get_int("clients.num_clients")));
  if (!o.robust)
    require_usage(plan != "shard",
                  "comm.plan = shard splits messages into coordinate blocks for a robust "
                  "aggregator (cm, tm, krum, multikrum, gm, cclip, bulyan); " + o.aggregator +
                      " is a sum: use comm.plan = reduce (or auto)");
  if (o.robust) {
    o.rule = robust::aggregator_options(cfg);
    require_usage(plan != "reduce",
                  "aggregator " + o.aggregator + " is not a sum: it needs comm.plan = gather, "
                  "shard or auto, not reduce");
    require_usage(plan != "shard" || robust::make_aggregator(o.rule)->shardable(),
                  "aggregator " + o.aggregator + " evaluates a validation loss on each whole "
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
    const int n = clients_per_round(cfg, static_cast<int>(cfg.get_int("clients.num_clients")));
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
  const bool power_reduce = o.compressor.name == "powersgd" && o.compressor.mode == "reduce";
  if (o.aggregator == "majority")
    require_usage(o.compressor.name == "sign",
                  "aggregator.name = majority votes on signs: it needs compressor.name = sign (got " +
                      o.compressor.name + ")");
  if (power_reduce) {
    require_usage(o.aggregator == "mean",
                  "compressor powersgd with mode reduce produces only the mean of the messages: "
                  "use aggregator.name = mean, or compressor.mode = per_client with " +
                      o.aggregator);
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

Exchange::Exchange(ExchangeOptions o, comm::Communicator& comm,
                   const std::vector<model::LayerView>& layers, std::uint64_t seed, int num_clients)
    : o_(std::move(o)), comm_(comm), layers_(compress::message_layers(layers, o_.global_scope)),
      compressor_(compress::make_compressor(o_.compressor)), seed_(seed),
      d_(layers.empty() ? 0 : layers.back().offset + layers.back().size()),
      powersgd_reduce_(o_.compressor.name == "powersgd" && o_.compressor.mode == "reduce"),
      num_clients_(num_clients),
      decoded_(static_cast<std::size_t>(d_)), q_prev_(layers_.size()) {
  const bool sums = !majority() && !o_.robust && !powersgd_reduce_;
  // At most one message per sampled client and round (all clients when per_round is unset).
  if (sums && o_.sum == SumMode::kExact)
    sum_ = BlockSum(d_, o_.per_round > 0 ? o_.per_round : std::max(1, num_clients));
  if (sums && o_.sum == SumMode::kFloat) float_sum_.assign(static_cast<std::size_t>(d_), 0.0f);
  if (majority()) votes_.assign(static_cast<std::size_t>(d_), 0);
  if (o_.robust) rule_ = robust::make_aggregator(o_.rule);
  // auto: the shard plan once a round's messages would not fit the per-rank budget.
  if (o_.robust && o_.auto_plan && rule_->shardable() &&
      static_cast<double>(o_.per_round) * static_cast<double>(d_) * 4.0 >
          static_cast<double>(o_.memory_budget))
    o_.plan = Plan::kShard;
  if (o_.plan == Plan::kShard) blocks_.resize(static_cast<std::size_t>(comm_.size()));
}

std::size_t Exchange::slot(int c) const {
  const auto it = std::lower_bound(sampled_.begin(), sampled_.end(), c);
  if (it == sampled_.end() || *it != c)
    throw std::logic_error(fmt::format("Exchange: client {} is not sampled this round", c));
  return static_cast<std::size_t>(it - sampled_.begin());
}

std::pair<std::int64_t, std::int64_t> Exchange::shard_block(int r) const {
  return robust::shard_block(d_, r, comm_.size());
}

std::string Exchange::describe() const {
  std::string what = o_.compressor.name;
  if (o_.error_feedback)
    what += o_.compressor.name == "none" ? " (error feedback has nothing to keep)"
                                         : " + error feedback";
  if (powersgd_reduce_)
    return fmt::format("reduce (PowerSGD: exact all-reduce of P, then of Q), compressor {}", what);
  if (o_.plan == Plan::kShard) {
    const auto [lo, hi] = shard_block(0);
    return fmt::format("shard (all-to-all of coordinate blocks in {}-coordinate chunks, {} on "
                       "{} of {} coordinates on rank 0), compressor {}",
                       robust::kSumChunk, o_.aggregator, hi - lo, d_, what);
  }
  if (o_.plan == Plan::kGather)
    return fmt::format("gather (all-gather of encoded messages, {} on every rank), compressor {}",
                       o_.aggregator, what);
  if (majority()) return fmt::format("reduce (integer vote counts), compressor {}", what);
  if (o_.robust) return fmt::format("gather (all-gather of encoded messages, {} on every rank)"
                                    ", compressor {}", o_.aggregator, what);
  if (o_.sum == SumMode::kFloat)
    return fmt::format("reduce (float32 all-reduce of decoded messages: results depend on the "
                       "rank count), compressor {}",
                       what);
  return fmt::format("reduce (exact block-scaled fixed-point all-reduce of decoded messages, "
                     "P = {} bits), compressor {}",
                     sum_.precision(), what);
}

void Exchange::begin_round(std::uint32_t round, std::span<const int> sampled) {
  round_ = round;
  if (sampled.empty()) {
    sampled_.resize(static_cast<std::size_t>(num_clients_));
    std::iota(sampled_.begin(), sampled_.end(), 0);
  } else {
    sampled_.assign(sampled.begin(), sampled.end());
  }
  bits_.assign(sampled_.size(), 0);
  sum_.clear();
  std::fill(float_sum_.begin(), float_sum_.end(), 0.0f);
  std::fill(votes_.begin(), votes_.end(), 0);
  decoded_finite_ = true;
  messages_finite_ = true;
  outbox_.clear();
  pending_.clear();
  for (auto& b : blocks_) b.clear();
  shard_meta_.clear();
  report_ = robust::Report{};
}

std::int64_t Exchange::compressor_floats_per_client() const {
  return compress::total_state_floats(*compressor_, layers_);
}

std::span<float> Exchange::client_state(int c) {
  const std::int64_t n = compress::total_state_floats(*compressor_, layers_);
  if (n == 0) return {};
  auto& s = state_[c];
  if (s.empty()) s.assign(static_cast<std::size_t>(n), 0.0f);
  return s;
}

void Exchange::save(StateBundle& b) const {
  if (sum_.size() > 0)
    b.i64["exchange/scales"] = std::vector<std::int64_t>(sum_.scales().begin(), sum_.scales().end());
  for (std::size_t l = 0; l < q_prev_.size(); ++l)
    if (!q_prev_[l].empty()) b.f32[fmt::format("exchange/q_prev/{}", l)] = q_prev_[l];
  if (rule_) {
    std::vector<float> v = rule_->saved_state();
    if (o_.plan == Plan::kShard) {  // every rank's block, in rank order: the whole vector
      const auto blocks = comm_.allgather_bytes(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(float)));
      v.clear();
      for (const auto& blk : blocks) {
        const auto* f = reinterpret_cast<const float*>(blk.data());
        v.insert(v.end(), f, f + blk.size() / sizeof(float));
      }
      if (!v.empty() && static_cast<std::int64_t>(v.size()) != d_) v.clear();  // not all started
    }
    if (!v.empty()) b.f32["exchange/rule"] = std::move(v);
  }
  for (const auto& [c, e] : error_) b.put_client("error", c, e);
  for (const auto& [c, st] : state_) b.put_client("compressor", c, st);
}

void Exchange::load(const StateBundle& b, const std::function<bool(int)>& owns) {
  if (sum_.size() > 0) {
    const auto& s = b.get_i64("exchange/scales");
    sum_.set_scales(std::vector<std::int16_t>(s.begin(), s.end()));
  }
  for (std::size_t l = 0; l < q_prev_.size(); ++l) {
    const std::string key = fmt::format("exchange/q_prev/{}", l);
    q_prev_[l] = b.has(key) ? b.get_f32(key) : std::vector<float>();
  }
  if (rule_ && b.has("exchange/rule")) {
    std::vector<float> v = b.get_f32("exchange/rule");
    if (o_.plan == Plan::kShard) {
      const auto [lo, hi] = shard_block(comm_.rank());
      v = std::vector<float>(v.begin() + lo, v.begin() + hi);
    }
    rule_->restore_state(std::move(v));
  }
  error_.clear();
  state_.clear();
  for (const auto& [slot, target] : {std::pair{"error", &error_}, std::pair{"compressor", &state_}}) {
    const auto it = b.clients.find(slot);
    if (it == b.clients.end()) continue;
    for (std::size_t k = 0; k < it->second.ids.size(); ++k) {
      const int c = static_cast<int>(it->second.ids[k]);
      if (!owns(c)) continue;
      const auto row = it->second.row(k);
      (*target)[c].assign(row.begin(), row.end());
    }
  }
}

void Downlink::save(StateBundle& b) const {
  b.f32["downlink/x_hat"] = x_hat_;
  b.f32["downlink/state"] = state_;
}

void Downlink::load(const StateBundle& b) {
  x_hat_ = b.get_f32("downlink/x_hat");
  state_ = b.get_f32("downlink/state");
}

std::span<const float> Exchange::error_memory(int c) const {
  auto it = error_.find(c);
  if (it == error_.end()) return {};
  return it->second;
}

void Exchange::accumulate(std::span<const float> decoded, double weight) {
  if (!majority() && o_.sum == SumMode::kFloat) {
    for (std::size_t i = 0; i < decoded.size(); ++i)
      float_sum_[i] += static_cast<float>(weight * static_cast<double>(decoded[i]));
    return;
  }
  if (!majority()) {
    sum_.add(decoded.data(), weight);
    return;
  }
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    if (!std::isfinite(decoded[i])) decoded_finite_ = false;
    votes_[i] += std::signbit(decoded[i]) ? -1 : 1;  // the sent sign bit; sign(0) = +1
  }
}

static void append_raw(std::vector<std::uint8_t>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

void Exchange::submit(int c, std::span<float> p, double weight, bool byzantine) {
  // Compressor none sends p itself: the memory would only ever hold zeros (O(d) per client),
  // so error feedback keeps none.
  const bool ef = o_.error_feedback && !byzantine && o_.compressor.name != "none";
  if (ef) {
    auto& e = error_[c];
    if (e.empty()) e.assign(p.size(), 0.0f);
  }
  // With error feedback (and outside PowerSGD's mode reduce) the compressor forms p = u_c + e_c
  // and updates e_c = p - decode(C(p)) itself (compress::encode_with_feedback), so that PowerSGD
  // can fuse both into its products (Note [PowerSGD passes]).
  const bool ef_in_encoding = ef && !powersgd_reduce_;
  if (ef && !ef_in_encoding) {  // p = u_c + e_c
    const auto& e = error_[c];
    for (std::size_t i = 0; i < p.size(); ++i) p[i] += e[i];
  }
  // A message that is not finite (or too large for the exact sums) must stop the run as
  // diverged even when a compressor would turn it into finite values (sign, randk, qsgd max).
  // robust rules drop such messages themselves.
  if (!o_.robust && !ef_in_encoding)
    for (const float v : p)
      if (!(std::fabs(v) < kExactLimit)) messages_finite_ = false;
  if (powersgd_reduce_) {
    std::int64_t bits = 0;
    for (const auto& l : layers_)
      bits += compress::powersgd::compressible(l.rows, l.cols)
                  ? 32LL * compress::powersgd::effective_rank(l.rows, l.cols, o_.compressor.rank) *
                        (l.rows + l.cols)
                  : 32LL * l.size();
    bits_[slot(c)] = bits;
    pending_.push_back(Pending{c, weight, std::vector<float>(p.begin(), p.end()), byzantine});
    return;
  }
  std::span<const float> decoded;
  const compress::MessageContext ctx{seed_, round_, static_cast<std::uint32_t>(c)};
  if (o_.compressor.name == "none" && o_.plan != Plan::kGather) {
    bits_[slot(c)] = 32 * d_;  // float32 verbatim: the encoding is the values themselves
    decoded = p;
  } else {
    compress::Encoded enc;
    if (ef_in_encoding) {  // p = u_c + e_c, decoded, e_c = p - decoded
      float max_abs = 0.0f;
      enc = compress::encode_with_feedback(*compressor_, p, error_[c], layers_, ctx,
                                           client_state(c), decoded_, &max_abs);
      if (!o_.robust && !(max_abs < kExactLimit)) messages_finite_ = false;
    } else {
      enc = compress::encode(*compressor_, p, layers_, ctx, client_state(c));
      compress::decode(*compressor_, enc, layers_, ctx, decoded_);
    }
    bits_[slot(c)] = static_cast<std::int64_t>(enc.bits);
    decoded = decoded_;
    if (o_.plan == Plan::kGather) {
      const auto client = static_cast<std::uint32_t>(c);
      const std::uint64_t nbytes = enc.bytes.size();
      append_raw(outbox_, &client, sizeof client);
      append_raw(outbox_, &enc.bits, sizeof enc.bits);
      append_raw(outbox_, &weight, sizeof weight);
      append_raw(outbox_, &nbytes, sizeof nbytes);
      append_raw(outbox_, enc.bytes.data(), enc.bytes.size());
    }
  }
  if (o_.plan == Plan::kReduce) accumulate(decoded, weight);
  if (o_.plan == Plan::kShard) {  // the owner drops a non-finite message before the all-to-all
    const auto client = static_cast<std::uint32_t>(c);
    const std::uint8_t finite = robust::all_finite(decoded.data(), d_) ? 1 : 0;
    append_raw(shard_meta_, &client, sizeof client);
    append_raw(shard_meta_, &weight, sizeof weight);
    append_raw(shard_meta_, &finite, sizeof finite);
    if (finite)
      for (int r = 0; r < comm_.size(); ++r) {
        const auto [lo, hi] = shard_block(r);
        blocks_[r].insert(blocks_[r].end(), decoded.begin() + lo, decoded.begin() + hi);
      }
  }
}

bool Exchange::finish(float* g, double total_weight) {
  comm_.allreduce(comm::View{bits_.data(), static_cast<std::int64_t>(bits_.size()),
                             comm::DType::kI64},
                  comm::ReduceOp::kSum);
  const bool valid = powersgd_reduce_    ? finish_powersgd(g, total_weight)
                     : o_.plan == Plan::kShard  ? finish_shard(g)
                     : o_.plan == Plan::kGather ? finish_gather(g, total_weight)
                                           : finish_reduce(g, total_weight);
  return comm_.allreduce_scalar(static_cast<std::int64_t>(valid && messages_finite_),
                                comm::ReduceOp::kMin) == 1;
}

static void votes_to_signs(const std::vector<std::int32_t>& votes, float* g) {
  for (std::size_t i = 0; i < votes.size(); ++i) g[i] = votes[i] >= 0 ? 1.0f : -1.0f;
}

bool Exchange::finish_reduce(float* g, double total_weight) {
  bool valid;
  if (majority()) {
    comm_.allreduce(comm::View{votes_.data(), d_, comm::DType::kI32}, comm::ReduceOp::kSum);
    valid = decoded_finite_;
    votes_to_signs(votes_, g);
  } else {
    valid = finish_sum(g, total_weight, /*reduce=*/true);
  }
  return valid;
}

bool Exchange::finish_sum(float* g, double total_weight, bool reduce) {
  if (o_.sum == SumMode::kFloat) {
    if (reduce)
      comm_.allreduce(comm::View{float_sum_.data(), d_, comm::DType::kF32}, comm::ReduceOp::kSum);
    bool finite = true;
    for (std::int64_t i = 0; i < d_; ++i) {
      g[i] = static_cast<float>(static_cast<double>(float_sum_[i]) / total_weight);
      finite = finite && std::isfinite(float_sum_[i]);
    }
    return finite;
  }
  return finish_block_sum(sum_, reduce ? &comm_ : nullptr, g, total_weight);
}

bool finish_block_sum(BlockSum& sum, comm::Communicator* comm, float* out, double divisor) {
  const auto meta = sum.seal();
  if (comm != nullptr)
    comm->allreduce(comm::View{meta.data(), static_cast<std::int64_t>(meta.size()),
                               comm::DType::kI32},
                    comm::ReduceOp::kMax);
  const auto spill = sum.pack_spill();
  if (comm != nullptr) {
    comm->allreduce(comm::View{sum.words().data(), sum.size(), comm::DType::kI64},
                    comm::ReduceOp::kSum);
    if (!spill.empty())  // the same size on every rank: the flags were max-reduced
      comm->allreduce(comm::View{spill.data(), static_cast<std::int64_t>(spill.size()),
                                 comm::DType::kI64},
                      comm::ReduceOp::kSum);
  }
  sum.read(out, divisor);
  return sum.valid();
}

// Walks the all-gathered records [client u32][bits u64][weight f64][nbytes u64][bytes]. Ranks own
// increasing blocks of client ids and pack their clients in increasing order, so this visits the
// round's messages in client order on every rank.
template <class F>
static void for_each_message(const std::vector<std::vector<std::uint8_t>>& inboxes, F&& visit) {
  for (const auto& box : inboxes) {
    std::size_t at = 0;
    const auto take = [&](void* dst, std::size_t n) {
      std::memcpy(dst, box.data() + at, n);
      at += n;
    };
    while (at < box.size()) {
      std::uint32_t client;
      double weight;
      std::uint64_t nbytes;
      compress::Encoded enc;
      take(&client, sizeof client);
      take(&enc.bits, sizeof enc.bits);
      take(&weight, sizeof weight);
      take(&nbytes, sizeof nbytes);
      enc.bytes.assign(box.begin() + static_cast<std::ptrdiff_t>(at),
                       box.begin() + static_cast<std::ptrdiff_t>(at + nbytes));
      at += nbytes;
      visit(client, weight, enc);
    }
  }
}

bool Exchange::finish_robust(float* g, const std::vector<std::vector<std::uint8_t>>& inboxes) {
  // Rows in client order whatever order ranks packed them in (crafted Byzantine messages come
  // after a rank's honest ones), so rules that depend on order see the same input everywhere.
  struct Row {
    std::uint32_t client;
    double weight;
    compress::Encoded enc;
  };
  std::vector<Row> rows;
  for_each_message(inboxes, [&](std::uint32_t client, double weight, const compress::Encoded& enc) {
    rows.push_back(Row{client, weight, enc});
  });
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.client < b.client; });
  std::vector<int> clients;
  std::vector<double> weights;
  matrix_.assign(rows.size() * static_cast<std::size_t>(d_), 0.0f);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    compress::decode(*compressor_, rows[i].enc, layers_,
                     compress::MessageContext{seed_, round_, rows[i].client},
                     std::span<float>(matrix_.data() + i * static_cast<std::size_t>(d_),
                                      static_cast<std::size_t>(d_)));
    clients.push_back(static_cast<int>(rows[i].client));
    weights.push_back(rows[i].weight);
  }
  robust::Messages m{matrix_.data(), static_cast<int>(clients.size()), d_, clients, weights};
  robust::Context ctx{seed_, round_, validation_loss_, x_, {}};
  return robust::aggregate(*rule_, m, ctx, g, report_);
}

bool Exchange::finish_shard(float* g) {
  const int P = comm_.size(), me = comm_.rank();
  // Who sent what: [client u32][weight f64][finite u8] per message, in each rank's order.
  struct Row {
    std::uint32_t client;
    double weight;
  };
  const auto metas = comm_.allgather_bytes(shard_meta_);
  constexpr std::size_t kMeta = sizeof(std::uint32_t) + sizeof(double) + 1;
  std::vector<Row> rows;  // the finite messages in arrival order (rank, then submission)
  std::vector<std::int64_t> rows_from(static_cast<std::size_t>(P), 0);
  int dropped = 0;
  for (int r = 0; r < P; ++r)
    for (std::size_t at = 0; at < metas[r].size(); at += kMeta) {
      Row row;
      std::memcpy(&row.client, metas[r].data() + at, sizeof row.client);
      std::memcpy(&row.weight, metas[r].data() + at + sizeof row.client, sizeof row.weight);
      if (metas[r][at + kMeta - 1] == 0) {
        ++dropped;
        continue;
      }
      rows.push_back(row);
      ++rows_from[r];
    }
  const auto [lo, hi] = shard_block(me);
  const std::int64_t w = hi - lo;
  const auto n = static_cast<std::int64_t>(rows.size());
  // One all-to-all: every rank receives all finite messages on its block.
  std::vector<std::int64_t> send_counts(static_cast<std::size_t>(P)), recv_counts(send_counts);
  std::vector<const float*> send(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r) {
    send[r] = blocks_[r].data();
    send_counts[r] = static_cast<std::int64_t>(blocks_[r].size());
    recv_counts[r] = rows_from[r] * w;
  }
  matrix_.resize(static_cast<std::size_t>(n * w));
  comm_.alltoallv(send, send_counts, matrix_.data(), recv_counts);
  for (auto& b : blocks_) std::vector<float>().swap(b);
  // Rows into client order (crafted Byzantine messages come after a rank's honest ones), in
  // place by cycles of the permutation.
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return rows[a].client < rows[b].client; });
  {
    std::vector<char> done(static_cast<std::size_t>(n), 0);
    std::vector<float> tmp(static_cast<std::size_t>(w));
    for (std::int64_t i = 0; i < n; ++i) {  // position i takes row order[i]
      if (done[i] || order[i] == i) continue;
      if (w > 0) std::memcpy(tmp.data(), matrix_.data() + i * w, sizeof(float) * w);
      std::int64_t j = i;
      for (;;) {
        done[j] = 1;
        const std::int64_t src = order[j];
        if (src == i) {
          if (w > 0) std::memcpy(matrix_.data() + j * w, tmp.data(), sizeof(float) * w);
          break;
        }
        if (w > 0) std::memcpy(matrix_.data() + j * w, matrix_.data() + src * w, sizeof(float) * w);
        j = src;
      }
    }
  }
  std::vector<int> clients(static_cast<std::size_t>(n));
  std::vector<double> weights(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    clients[i] = static_cast<int>(rows[order[i]].client);
    weights[i] = rows[order[i]].weight;
  }
  robust::Messages m{matrix_.data(), static_cast<int>(n), w, clients, weights};
  robust::Context ctx{seed_, round_, validation_loss_, x_, {}};
  ctx.shard.offset = lo;
  ctx.shard.d_total = d_;
  ctx.shard.gather = [this](std::span<const std::uint8_t> mine) {
    return comm_.allgather_bytes(mine);
  };
  std::vector<float> block(static_cast<std::size_t>(w));
  if (!robust::aggregate(*rule_, m, ctx, block.data(), report_, /*dropped_earlier=*/dropped))
    return false;
  // Every rank assembles the whole aggregate from the output blocks.
  const auto outs = comm_.allgather_bytes(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(block.data()), block.size() * sizeof(float)));
  for (int r = 0; r < P; ++r) {
    const auto [rlo, rhi] = shard_block(r);
    if (static_cast<std::int64_t>(outs[r].size()) != (rhi - rlo) * 4)
      throw std::logic_error("shard plan: an output block has the wrong size");
    if (rhi > rlo) std::memcpy(g + rlo, outs[r].data(), outs[r].size());
  }
  return true;
}

bool Exchange::finish_gather(float* g, double total_weight) {
  const auto inboxes = comm_.allgather_bytes(outbox_);
  if (rule_) return finish_robust(g, inboxes);
  sum_.clear();
  std::fill(float_sum_.begin(), float_sum_.end(), 0.0f);
  std::fill(votes_.begin(), votes_.end(), 0);
  decoded_finite_ = true;
  for_each_message(inboxes, [&](std::uint32_t client, double weight, const compress::Encoded& enc) {
    compress::decode(*compressor_, enc, layers_, compress::MessageContext{seed_, round_, client},
                     decoded_);
    accumulate(decoded_, weight);
  });
  if (majority()) {
    votes_to_signs(votes_, g);
    return decoded_finite_;
  }
  return finish_sum(g, total_weight, /*reduce=*/false);
}

bool Exchange::finish_powersgd(float* g, double total_weight) {
  namespace ps = compress::powersgd;
  const int rank = o_.compressor.rank;
  // Phase 1: P = sum_i w_i M_i Q0 for matrix layers (the power step on the weighted sum; only
  // its direction matters, and with unit weights it is docs/algorithms.md's sum of P_i); the other
  // layers' weighted sums, exactly.
  std::vector<std::int64_t> p_off(layers_.size()), q_off(layers_.size());
  std::vector<int> r(layers_.size(), 0);
  std::int64_t p_total = 0, q_total = 0, offset = 0;
  std::vector<std::int64_t> layer_off(layers_.size());
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto& L = layers_[l];
    layer_off[l] = offset;
    offset += L.size();
    p_off[l] = p_total;
    q_off[l] = q_total;
    if (ps::compressible(L.rows, L.cols)) {
      r[l] = ps::effective_rank(L.rows, L.cols, rank);
      p_total += L.rows * r[l];
      q_total += L.cols * r[l];
    } else {
      p_total += L.size();
    }
  }
  std::vector<std::vector<float>> q0(layers_.size());
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    if (r[l] == 0) continue;
    const auto& L = layers_[l];
    if (o_.compressor.warm_start && !q_prev_[l].empty()) {
      q0[l] = q_prev_[l];
    } else {
      q0[l].resize(static_cast<std::size_t>(L.cols * r[l]));
      ps::initial_q(compress::MessageContext{seed_, round_, 0}, L, r[l], q0[l].data());
    }
  }
  ExactAccumulator p_acc(p_total), q_acc(q_total);
  std::vector<float> scratch;
  for (const auto& pend : pending_) {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const auto& L = layers_[l];
      const float* m = pend.m.data() + layer_off[l];
      if (r[l] == 0) {
        for (std::int64_t i = 0; i < L.size(); ++i) p_acc.add_at(p_off[l] + i, pend.weight * m[i]);
        continue;
      }
      scratch.resize(static_cast<std::size_t>(L.rows * r[l]));
      ps::multiply_p(m, q0[l].data(), L.rows, L.cols, r[l], scratch.data());
      for (std::int64_t i = 0; i < L.rows * r[l]; ++i)
        p_acc.add_at(p_off[l] + i, pend.weight * scratch[i]);
    }
  }
  comm_.allreduce(comm::View{p_acc.data(), p_total, comm::DType::kExact128}, comm::ReduceOp::kSum);
  std::vector<float> p_all(static_cast<std::size_t>(p_total));
  p_acc.read(p_all.data(), 1.0);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto& L = layers_[l];
    if (r[l] == 0) {  // uncompressed layer: the weighted mean
      for (std::int64_t i = 0; i < L.size(); ++i)
        g[layer_off[l] + i] = static_cast<float>(p_acc.value(p_off[l] + i) / total_weight);
    } else {
      ps::orthonormalize(p_all.data() + p_off[l], L.rows, r[l]);
    }
  }
  // Phase 2: Q = sum_i w_i M_i^T P_hat / sum_i w_i.
  for (const auto& pend : pending_) {
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      if (r[l] == 0) continue;
      const auto& L = layers_[l];
      scratch.resize(static_cast<std::size_t>(L.cols * r[l]));
      ps::multiply_q(pend.m.data() + layer_off[l], p_all.data() + p_off[l], L.rows, L.cols, r[l],
                     scratch.data());
      for (std::int64_t i = 0; i < L.cols * r[l]; ++i)
        q_acc.add_at(q_off[l] + i, pend.weight * scratch[i]);
    }
  }
  comm_.allreduce(comm::View{q_acc.data(), q_total, comm::DType::kExact128}, comm::ReduceOp::kSum);
  std::vector<float> q_all(static_cast<std::size_t>(q_total));
  q_acc.read(q_all.data(), total_weight);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    if (r[l] == 0) continue;
    const auto& L = layers_[l];
    ps::reconstruct(p_all.data() + p_off[l], q_all.data() + q_off[l], L.rows, L.cols, r[l],
                    g + layer_off[l]);
    if (o_.compressor.warm_start)
      q_prev_[l].assign(q_all.begin() + q_off[l], q_all.begin() + q_off[l] + L.cols * r[l]);
  }
  // Error feedback against the aggregated approximation: e_i = M_i - P_hat Q^T on matrix
  // layers; the other layers travel exactly, so their error is zero.
  if (o_.error_feedback) {
    for (const auto& pend : pending_) {
      if (pend.byzantine) continue;
      auto& e = error_[pend.client];
      for (std::size_t l = 0; l < layers_.size(); ++l) {
        const auto& L = layers_[l];
        for (std::int64_t i = 0; i < L.size(); ++i) {
          const std::int64_t at = layer_off[l] + i;
          e[at] = r[l] == 0 ? 0.0f : pend.m[at] - g[at];
        }
      }
    }
  }
  return p_acc.valid() && q_acc.valid();
}

std::int64_t Exchange::uplink_bits() const {
  std::int64_t total = 0;
  for (auto b : bits_) total += b;
  return total;
}

Downlink::Downlink(const Config& cfg, const std::vector<model::LayerView>& layers,
                   std::uint64_t seed, std::span<const float> x0)
    : seed_(seed) {
  const auto o = compress::compressor_options(cfg, "downlink_compressor");
  if (o.name == "none") return;
  compressor_ = compress::make_compressor(o);
  layers_ = compress::message_layers(layers, cfg.get_string("downlink_compressor.scope") == "global");
  x_hat_.assign(x0.begin(), x0.end());
  diff_.resize(x0.size());
  decoded_.resize(x0.size());
  state_.assign(static_cast<std::size_t>(compress::total_state_floats(*compressor_, layers_)), 0.0f);
}

std::string Downlink::describe() const {
  return compressor_ ? "downlink " + compressor_->name() + " of x - x_hat" : "downlink float32";
}

std::span<const float> Downlink::broadcast(std::span<const float> x, std::uint32_t round,
                                           std::int64_t* bits) {
  if (!compressor_) {
    *bits = 32 * static_cast<std::int64_t>(x.size());
    return x;
  }
  for (std::size_t i = 0; i < x.size(); ++i) diff_[i] = x[i] - x_hat_[i];
  const compress::MessageContext ctx{seed_, round, kDownlinkClient, Purpose::kDownlink};
  const compress::Encoded enc = compress::encode(*compressor_, diff_, layers_, ctx, state_);
  compress::decode(*compressor_, enc, layers_, ctx, decoded_);
  for (std::size_t i = 0; i < x.size(); ++i) x_hat_[i] += decoded_[i];
  *bits = static_cast<std::int64_t>(enc.bits);
  return x_hat_;
}

}  // namespace cohort::algo
