#include "exchange/downlink.h"

#include "exchange/options.h"

namespace cohort::exchange {

Downlink::Downlink(const Config& cfg, const std::vector<LayerView>& layers,
                   std::uint64_t seed, std::span<const float> x0)
    : seed_(seed) {
  const auto o = compress::compressor_options(cfg, compress::kDownlinkSlot);
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

void Downlink::save(StateBundle& b) const {
  b.f32["downlink/x_hat"] = x_hat_;
  b.f32["downlink/state"] = state_;
}

void Downlink::load(const StateBundle& b) {
  x_hat_ = b.get_f32("downlink/x_hat");
  state_ = b.get_f32("downlink/state");
}

}  // namespace cohort::exchange
