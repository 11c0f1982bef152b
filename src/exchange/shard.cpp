#include "exchange/shard.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

#include "robust/thread_gather.h"

namespace cohort::exchange {
namespace {

void append_raw(std::vector<std::uint8_t>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

}  // namespace

ShardExchange::ShardExchange(ExchangeOptions o, comm::Communicator& comm,
                             const std::vector<LayerView>& layers, std::uint64_t seed,
                             int num_clients, ClientStore& store, std::unique_ptr<robust::Aggregator> rule)
    : ExchangeBase(std::move(o), comm, layers, seed, num_clients, store), rule_(std::move(rule)),
      blocks_(static_cast<std::size_t>(comm_.size())) {}

std::pair<std::int64_t, std::int64_t> ShardExchange::shard_block(int r) const {
  return robust::shard_block(d_, r, comm_.size());
}

std::string ShardExchange::describe() const {
  const auto [lo, hi] = shard_block(0);
  return fmt::format("shard (all-to-all of coordinate blocks in {}-coordinate chunks, {} on "
                     "{} of {} coordinates on rank 0), compressor {}",
                     robust::kSumChunk, robust::aggregator_name(o_.aggregator), hi - lo, d_,
                     compressor_description());
}

void ShardExchange::submit(int c, std::span<float> message, double weight, bool byzantine) {
  const std::span<const float> decoded = encode_decode(c, message, byzantine, /*wire=*/nullptr);
  // The owner drops a non-finite message before the all-to-all.
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

void ShardExchange::start_round() {
  for (auto& b : blocks_) b.clear();
  shard_meta_.clear();
}

bool ShardExchange::finish_round(float* g, double /*total_weight*/) {
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

void ShardExchange::save_state(StateBundle& b) const {
  std::vector<float> v = rule_->saved_state();
  // Every rank's block, in rank order: the whole vector.
  const auto blocks = comm_.allgather_bytes(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(float)));
  v.clear();
  for (const auto& blk : blocks) {
    const auto* f = reinterpret_cast<const float*>(blk.data());
    v.insert(v.end(), f, f + blk.size() / sizeof(float));
  }
  if (!v.empty() && static_cast<std::int64_t>(v.size()) != d_) v.clear();  // not all started
  if (!v.empty()) b.f32["exchange/rule"] = std::move(v);
}

void ShardExchange::load_state(const StateBundle& b) {
  if (!b.has("exchange/rule")) return;
  const std::vector<float>& v = b.get_f32("exchange/rule");
  const auto [lo, hi] = shard_block(comm_.rank());
  rule_->restore_state(std::vector<float>(v.begin() + lo, v.begin() + hi));
}

}  // namespace cohort::exchange
