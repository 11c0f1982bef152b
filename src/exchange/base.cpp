#include "exchange/base.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "core/exact_sum.h"

namespace cohort::exchange {

ExchangeBase::ExchangeBase(ExchangeOptions o, comm::Communicator& comm,
                           const std::vector<LayerView>& layers, std::uint64_t seed,
                           int num_clients, ClientStore& store)
    : o_(std::move(o)), comm_(comm), layers_(compress::message_layers(layers, o_.global_scope)),
      compressor_(compress::make_compressor(o_.compressor)), seed_(seed),
      d_(layers.empty() ? 0 : layers.back().offset + layers.back().size()),
      decoded_(static_cast<std::size_t>(d_)), num_clients_(num_clients), store_(store) {
  if (keeps_error(false)) error_slot_ = store_.declare("error", "error feedback", d_);
  state_slot_ = store_.declare("compressor", "compressor state (" + o_.compressor.name + ")",
                               compress::total_state_floats(*compressor_, layers_));
}

std::size_t ExchangeBase::slot(int c) const {
  const auto it = std::lower_bound(sampled_.begin(), sampled_.end(), c);
  if (it == sampled_.end() || *it != c)
    throw std::logic_error(fmt::format("Exchange: client {} is not sampled this round", c));
  return static_cast<std::size_t>(it - sampled_.begin());
}

std::int64_t ExchangeBase::max_messages() const {
  return o_.per_round > 0 ? o_.per_round : std::max(1, num_clients_);
}

std::string ExchangeBase::compressor_description() const {
  std::string what = o_.compressor.name;
  if (o_.error_feedback)
    what += o_.compressor.name == "none" ? " (error feedback has nothing to keep)"
                                         : " + error feedback";
  return what;
}

void ExchangeBase::begin_round(std::uint32_t round, std::span<const int> sampled) {
  round_ = round;
  if (sampled.empty()) {
    sampled_.resize(static_cast<std::size_t>(num_clients_));
    std::iota(sampled_.begin(), sampled_.end(), 0);
  } else {
    sampled_.assign(sampled.begin(), sampled.end());
  }
  bits_.assign(sampled_.size(), 0);
  messages_finite_ = true;
  report_ = robust::Report{};
  start_round();
}

std::span<float> ExchangeBase::client_error(int c) { return store_.row(error_slot_, c); }

std::span<float> ExchangeBase::client_state(int c) {
  if (state_slot_ == ClientStore::kNone) return {};
  return store_.row(state_slot_, c);
}

std::span<const float> ExchangeBase::error_memory(int c) const {
  if (error_slot_ == ClientStore::kNone) return {};
  return store_.find(error_slot_, c);
}

void ExchangeBase::set_validation(std::function<double(const float*)> loss, const float* x) {
  validation_loss_ = std::move(loss);
  x_ = x;
}

bool ExchangeBase::keeps_error(bool byzantine) const {
  return o_.error_feedback && !byzantine && o_.compressor.name != "none";
}

void ExchangeBase::check_message(std::span<const float> p) {
  if (o_.robust_rule()) return;
  for (const float v : p)
    if (!(std::fabs(v) < kExactLimit)) messages_finite_ = false;
}

void ExchangeBase::set_bits(int c, std::int64_t bits) { bits_[slot(c)] = bits; }

std::span<const float> ExchangeBase::encode_decode(int c, std::span<float> p, bool byzantine,
                                                   compress::Encoded* wire) {
  // With error feedback the compressor forms p = u_c + e_c and updates e_c = p - decode(C(p))
  // itself (compress::encode_with_feedback), so that PowerSGD can fuse both into its products
  // (Note [PowerSGD passes]); the check then sees p through the max |p| the encoding reports.
  const bool ef = keeps_error(byzantine);
  const std::span<float> e = ef ? client_error(c) : std::span<float>();
  if (!ef) check_message(p);
  if (o_.compressor.name == "none" && wire == nullptr) {
    set_bits(c, 32 * d_);  // float32 verbatim: the encoding is the values themselves
    return p;
  }
  const compress::MessageContext ctx{seed_, round_, static_cast<std::uint32_t>(c)};
  compress::Encoded enc;
  if (ef) {  // p = u_c + e_c, decoded, e_c = p - decoded
    float max_abs = 0.0f;
    enc = compress::encode_with_feedback(*compressor_, p, e, layers_, ctx, client_state(c),
                                         decoded_, &max_abs);
    if (!o_.robust_rule() && !(max_abs < kExactLimit)) messages_finite_ = false;
  } else {
    enc = compress::encode(*compressor_, p, layers_, ctx, client_state(c));
    compress::decode(*compressor_, enc, layers_, ctx, decoded_);
  }
  set_bits(c, static_cast<std::int64_t>(enc.bits));
  if (wire != nullptr) *wire = std::move(enc);
  return decoded_;
}

bool ExchangeBase::finish(float* g, double total_weight) {
  comm_.allreduce(comm::View{bits_.data(), static_cast<std::int64_t>(bits_.size()),
                             comm::DType::kI64},
                  comm::ReduceOp::kSum);
  const bool valid = finish_round(g, total_weight);
  return comm_.allreduce_scalar(static_cast<std::int64_t>(valid && messages_finite_),
                                comm::ReduceOp::kMin) == 1;
}

std::int64_t ExchangeBase::uplink_bits() const {
  std::int64_t total = 0;
  for (auto b : bits_) total += b;
  return total;
}

}  // namespace cohort::exchange
