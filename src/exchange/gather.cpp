#include "exchange/gather.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace cohort::exchange {
namespace {

void append_raw(std::vector<std::uint8_t>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

// Walks the all-gathered records [client u32][bits u64][weight f64][nbytes u64][bytes]. Ranks own
// increasing blocks of client ids and pack their clients in increasing order, so this visits the
// round's messages in client order on every rank.
template <class F>
void for_each_message(const std::vector<std::vector<std::uint8_t>>& inboxes, F&& visit) {
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

}  // namespace

GatherExchange::GatherExchange(ExchangeOptions o, comm::Communicator& comm,
                               const std::vector<LayerView>& layers, std::uint64_t seed,
                               int num_clients, ClientStore& store, std::unique_ptr<robust::Aggregator> rule)
    : ExchangeBase(std::move(o), comm, layers, seed, num_clients, store), rule_(std::move(rule)) {
  if (!rule_)
    sum_.emplace(o_.aggregator == robust::AggregatorKind::kMajority, o_.sum, d_, max_messages());
}

std::string GatherExchange::describe() const {
  return fmt::format("gather (all-gather of encoded messages, {} on every rank), compressor {}",
                     robust::aggregator_name(o_.aggregator), compressor_description());
}

void GatherExchange::submit(int c, std::span<float> message, double weight, bool byzantine) {
  compress::Encoded enc;
  encode_decode(c, message, byzantine, &enc);
  const auto client = static_cast<std::uint32_t>(c);
  const std::uint64_t nbytes = enc.bytes.size();
  append_raw(outbox_, &client, sizeof client);
  append_raw(outbox_, &enc.bits, sizeof enc.bits);
  append_raw(outbox_, &weight, sizeof weight);
  append_raw(outbox_, &nbytes, sizeof nbytes);
  append_raw(outbox_, enc.bytes.data(), enc.bytes.size());
}

void GatherExchange::start_round() {
  outbox_.clear();
  if (sum_) sum_->clear();
}

bool GatherExchange::finish_round(float* g, double total_weight) {
  const auto inboxes = comm_.allgather_bytes(outbox_);
  if (rule_) return finish_robust(g, inboxes);
  sum_->clear();
  for_each_message(inboxes, [&](std::uint32_t client, double weight, const compress::Encoded& enc) {
    compress::decode(*compressor_, enc, layers_, compress::MessageContext{seed_, round_, client},
                     decoded_);
    sum_->add(decoded_, weight);
  });
  return sum_->finish(/*comm=*/nullptr, g, total_weight);
}

bool GatherExchange::finish_robust(float* g,
                                   const std::vector<std::vector<std::uint8_t>>& inboxes) {
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
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.client < b.client; });
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

void GatherExchange::save_state(StateBundle& b) const {
  if (sum_) sum_->save(b);
  if (rule_) {
    std::vector<float> v = rule_->saved_state();
    if (!v.empty()) b.f32["exchange/rule"] = std::move(v);
  }
}

void GatherExchange::load_state(const StateBundle& b) {
  if (sum_) sum_->load(b);
  if (rule_ && b.has("exchange/rule")) rule_->restore_state(b.get_f32("exchange/rule"));
}

}  // namespace cohort::exchange
