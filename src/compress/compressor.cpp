// The message drivers and the compressor registry (docs/algorithms.md §2).
#include "compress/compressor.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <stdexcept>

#include "compress/none.h"
#include "compress/powersgd.h"
#include "compress/qsgd.h"
#include "compress/randk.h"
#include "compress/sign.h"
#include "compress/topk.h"
#include "core/errors.h"
#include "core/schema.h"

namespace cohort::compress {

std::vector<LayerShape> message_layers(const std::vector<LayerView>& layers, bool global) {
  std::int64_t d = 0;
  for (const auto& l : layers) {
    if (l.offset != d)
      throw std::logic_error(
          fmt::format("layer '{}' starts at {}, expected {} (layers must be "
                      "back to back)",
                      l.name, l.offset, d));
    d += l.size();
  }
  if (global) return {LayerShape{0, d, 1}};
  std::vector<LayerShape> out;
  out.reserve(layers.size());
  for (std::size_t i = 0; i < layers.size(); ++i)
    out.push_back(LayerShape{static_cast<std::uint32_t>(i), layers[i].rows, layers[i].cols});
  return out;
}

namespace {

std::int64_t total_size(const std::vector<LayerShape>& layers) {
  std::int64_t d = 0;
  for (const auto& l : layers) d += l.size();
  return d;
}

void check_state(const Compressor& c, const std::vector<LayerShape>& layers, std::size_t given) {
  if (given != 0 && given != static_cast<std::size_t>(total_state_floats(c, layers)))
    throw std::logic_error(fmt::format("compressor state has {} floats, expected 0 or {}", given,
                                       total_state_floats(c, layers)));
}

// The layer walk of encode and encode_with_feedback: checks the message's size and the state's,
// then calls per_layer(layer, at, n, layer_state, rng, writer) for each layer in order, with the
// message's private stream (Note [Compression streams]) and the layer's slice of the state.
template <class PerLayer>
Encoded encode_layers(const char* who, const Compressor& c, std::size_t values,
                      const std::vector<LayerShape>& layers, const MessageContext& ctx,
                      std::span<float> state, PerLayer&& per_layer) {
  if (static_cast<std::int64_t>(values) != total_size(layers))
    throw std::logic_error(
        fmt::format("{}: message has {} values, layers hold {}", who, values, total_size(layers)));
  check_state(c, layers, state.size());
  Rng rng = ctx.private_rng();  // one private stream per message
  BitWriter w;
  std::size_t at = 0, state_at = 0;
  for (const auto& layer : layers) {
    const auto n = static_cast<std::size_t>(layer.size());
    std::span<float> layer_state;
    if (!state.empty()) {
      const auto s = static_cast<std::size_t>(c.state_floats(layer));
      layer_state = state.subspan(state_at, s);
      state_at += s;
    }
    per_layer(layer, at, n, layer_state, rng, w);
    at += n;
  }
  Encoded enc;
  enc.bits = w.bits();
  enc.bytes = w.finish();
  return enc;
}

}  // namespace

Encoded encode(const Compressor& c, std::span<const float> v, const std::vector<LayerShape>& layers,
               const MessageContext& ctx, std::span<float> state) {
  return encode_layers("encode", c, v.size(), layers, ctx, state,
                       [&](const LayerShape& layer, std::size_t at, std::size_t n,
                           std::span<float> layer_state, Rng& rng, BitWriter& w) {
                         c.encode_layer(v.subspan(at, n), layer, ctx, layer_state, rng, w);
                       });
}

void decode(const Compressor& c, const Encoded& msg, const std::vector<LayerShape>& layers,
            const MessageContext& ctx, std::span<float> out) {
  if (static_cast<std::int64_t>(out.size()) != total_size(layers))
    throw std::logic_error(fmt::format("decode: output has {} values, layers hold {}", out.size(),
                                       total_size(layers)));
  if (msg.bytes.size() != (msg.bits + 7) / 8)
    throw std::runtime_error(
        fmt::format("wire format: {} bytes for {} bits", msg.bytes.size(), msg.bits));
  BitReader r(msg.bytes.data(), msg.bits);
  std::size_t at = 0;
  for (const auto& layer : layers) {
    const auto n = static_cast<std::size_t>(layer.size());
    c.decode_layer(r, layer, ctx, out.subspan(at, n));
    at += n;
  }
  if (r.position() != msg.bits)
    throw std::runtime_error(
        fmt::format("wire format: {} bits left after the last layer", msg.bits - r.position()));
}

std::int64_t total_state_floats(const Compressor& c, const std::vector<LayerShape>& layers) {
  std::int64_t s = 0;
  for (const auto& l : layers) s += c.state_floats(l);
  return s;
}

float Compressor::encode_layer_with_feedback(std::span<const float>, std::span<float>,
                                             const LayerShape&, const MessageContext&,
                                             std::span<float>, Rng&, BitWriter&,
                                             std::span<float>) const {
  throw std::logic_error("compressor " + name() + " does not fuse error feedback");
}

namespace {

// max(a, b), NaN when either is NaN.
float max_magnitude(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<float>::quiet_NaN();
  return std::max(a, b);
}

}  // namespace

Encoded encode_with_feedback(const Compressor& c, std::span<float> v, std::span<float> e,
                             const std::vector<LayerShape>& layers, const MessageContext& ctx,
                             std::span<float> state, std::span<float> decoded, float* max_abs) {
  if (e.size() != v.size() || decoded.size() != v.size())
    throw std::logic_error(fmt::format("encode_with_feedback: message {}, error memory {}, output {}",
                                       v.size(), e.size(), decoded.size()));
  float extent = 0.0f;
  if (!c.fuses_error_feedback()) {  // the definition, step by step
    // max |p| as the bits of |p|: integer order is float order there, and NaNs lie above +inf
    // (one vectorised loop with the addition).
    std::int32_t top = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      v[i] += e[i];
      top = std::max(top, std::bit_cast<std::int32_t>(v[i]) & 0x7FFFFFFF);
    }
    Encoded enc = encode(c, v, layers, ctx, state);
    decode(c, enc, layers, ctx, decoded);
    for (std::size_t i = 0; i < v.size(); ++i) e[i] = v[i] - decoded[i];
    *max_abs = top > 0x7F800000 ? std::numeric_limits<float>::quiet_NaN()
                                : std::bit_cast<float>(top);
    return enc;
  }
  Encoded enc = encode_layers(
      "encode_with_feedback", c, v.size(), layers, ctx, state,
      [&](const LayerShape& layer, std::size_t at, std::size_t n, std::span<float> layer_state,
          Rng& rng, BitWriter& w) {
        extent = max_magnitude(
            extent, c.encode_layer_with_feedback(v.subspan(at, n), e.subspan(at, n), layer, ctx,
                                                 layer_state, rng, w, decoded.subspan(at, n)));
      });
  *max_abs = extent;
  return enc;
}

void require_one_of(const CompressorOptions& o, const std::string& key, const std::string& value,
                    std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += list.empty() ? a : fmt::format(", {}", a);
  }
  throw UsageError(
      fmt::format("{}.{} = '{}' is not allowed: expected one of {}", o.section, key, value, list));
}

// The registry: one explicit list (Note [Registration]); each entry is declared in the
// compressor's own file.
const std::vector<CompressorRegistration>& compressors() {
  static const std::vector<CompressorRegistration> list = {
      none_registration(), sign_registration(),  topk_registration(),
      randk_registration(), qsgd_registration(), powersgd::registration(),
  };
  return list;
}

Section compressor_section(const std::string& slot) {
  const bool uplink = slot == kUplinkSlot;
  if (!uplink && slot != kDownlinkSlot) throw std::logic_error("no compressor slot " + slot);
  Section s =
      slot_section(slot,
                   uplink ? "Compression of client messages (uplink), docs/algorithms.md §2."
                          : "Compression of the model broadcast: the server sends "
                            "C(x - x_hat) and every sampled client trains from x_hat += "
                            "decode(...).",
                   "none", compressors());
  // Read by the exchange and the downlink, not by the compressors.
  s.options = {opt_enum("scope", "layer", {"layer", "global"},
                        "compress each layer separately, or the whole vector as one")};
  if (uplink)
    s.options.push_back(opt_bool("error_feedback", false,
                                 "keep e_i = p - decode(C(p)) per client and add it next time"));
  return s;
}

CompressorOptions::CompressorOptions() {
  for (const auto& r : compressors()) read_defaults(*this, r.options);
}

CompressorOptions compressor_options(const Config& cfg, const std::string& section) {
  CompressorOptions o;
  o.section = section;
  o.name = cfg.get_string(section + ".name");
  if (const auto* r = find_registration(compressors(), o.name))
    read_fields(o, r->options, cfg, section);
  return o;
}

std::unique_ptr<Compressor> make_compressor(const CompressorOptions& o) {
  const auto* r = find_registration(compressors(), o.name);
  if (r == nullptr)
    throw UsageError(fmt::format("{}.name = '{}' is not known: expected one of {}", o.section,
                                 o.name, buildable_names(compressors())));
  return r->make(o);
}

}  // namespace cohort::compress
