// Compressors: a client's message -> bytes on the wire -> the decoded message
// (docs/algorithms.md §2). Every compressor has a real encoding; the uplink bits in the results
// file are the sizes of these encodings, never a formula.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compress/bitstream.h"
#include "core/layers.h"
#include "core/registration.h"
#include "core/rng.h"

namespace cohort::compress {

// An encoded message: `bits` is the exact size of the encoding; bytes.size() == ceil(bits/8).
struct Encoded {
  std::vector<std::uint8_t> bytes;
  std::uint64_t bits = 0;
};

// Note [Compression streams]
// A compressor may draw from two keyed streams (Note [Keyed randomness]):
//  - the client's private stream (seed, round, client, kCompression): QSGD's stochastic
//    rounding; one stream per message, drawn layer after layer;
//  - the round's shared stream for layer l: (seed, round, kSharedStreamBase + l, kCompression),
//    the same on every client and rank: randk's indices, PowerSGD's starting Q.
// Decoding never needs the private stream, so any rank can decode any client's message.
inline constexpr std::uint32_t kSharedStreamBase = 0xFFFF0000u;

// The model broadcast (downlink) draws from the same scheme under Purpose::kDownlink, so its
// random indices and PowerSGD start are independent of the clients' uplink streams.
struct MessageContext {
  std::uint64_t seed = 0;
  std::uint32_t round = 0;
  std::uint32_t client = 0;
  Purpose purpose = Purpose::kCompression;
  Rng private_rng() const { return Rng(seed, round, client, purpose); }
  Rng shared_rng(std::uint32_t layer) const {
    return Rng(seed, round, kSharedStreamBase + layer, purpose);
  }
};

// One tensor of the message, viewed as rows x cols (a vector is rows x 1).
struct LayerShape {
  std::uint32_t index = 0;  // position in the layer list (selects the shared stream)
  std::int64_t rows = 0, cols = 0;
  std::int64_t size() const { return rows * cols; }
};

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual std::string name() const = 0;
  // Appends the encoding of one layer's values v (layer.size() floats) to `out`.
  // `state` is this client's persistent compressor state for the layer
  // (state_floats(layer) floats, zero before the client's first message), or empty.
  virtual void encode_layer(std::span<const float> v, const LayerShape& layer,
                            const MessageContext& ctx, std::span<float> state, Rng& private_rng,
                            BitWriter& out) const = 0;
  // Reads one layer's encoding and writes the decoded values (overwriting out).
  virtual void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                            std::span<float> out) const = 0;
  // Persistent per-client state the compressor keeps for a layer (PowerSGD warm start).
  virtual std::int64_t state_floats(const LayerShape&) const { return 0; }

  // Error feedback fused into one layer's encoding (docs/algorithms.md §2 "Error feedback"):
  // appends the encoding of p = v + e, writes decode(C(p)) to `decoded`, sets e <- p - decoded
  // and returns max_i |p_i| (NaN when a p_i is NaN), bit for bit what the definition gives.
  // Only compressors whose fuses_error_feedback() is true implement it; encode_with_feedback
  // runs the definition step by step for the others.
  virtual bool fuses_error_feedback() const { return false; }
  virtual float encode_layer_with_feedback(std::span<const float> v, std::span<float> e,
                                           const LayerShape& layer, const MessageContext& ctx,
                                           std::span<float> state, Rng& private_rng, BitWriter& out,
                                           std::span<float> decoded) const;
};

// The layers a message is split into: the model's layers (scope "layer") or one vector of all
// d values (scope "global").
std::vector<LayerShape> message_layers(const std::vector<LayerView>& layers, bool global);

// Encodes / decodes a whole message layer by layer. state: all layers' state back to back
// (total_state_floats), or empty when the compressor keeps none.
Encoded encode(const Compressor& c, std::span<const float> v, const std::vector<LayerShape>& layers,
               const MessageContext& ctx, std::span<float> state);
void decode(const Compressor& c, const Encoded& msg, const std::vector<LayerShape>& layers,
            const MessageContext& ctx, std::span<float> out);
std::int64_t total_state_floats(const Compressor& c, const std::vector<LayerShape>& layers);

// A message with error feedback: encodes p = v + e, writes decoded = decode(C(p)) and sets
// e <- p - decoded; *max_abs = max_i |p_i| (NaN when a p_i is NaN), for the exchange's check of
// the message. Fused into the encoding where the compressor can (fuses_error_feedback), else step
// by step, with p formed in v; either way the same bits. v, e and decoded must not overlap.
Encoded encode_with_feedback(const Compressor& c, std::span<float> v, std::span<float> e,
                             const std::vector<LayerShape>& layers, const MessageContext& ctx,
                             std::span<float> state, std::span<float> decoded, float* max_abs);

// Note [Compressor options]
// Each compressor declares its options once, in its own file, as Fields bound to the members
// below (Note [Registration]): key, type, default, help and range. From those declarations come
// the schema of both compressor slots (compressor_section), the reader (compressor_options) and
// the members' defaults (the constructor), and beside them, in the same file, the factory's
// checks of what the schema's ranges cannot say or what a caller without a config may pass
// (bench, tests). One struct holds every compressor's options, so that code which picks a
// compressor by name (the exchange, the commands) needs no per-compressor type.
struct CompressorOptions {
  // Every option at its declared default, name none. (The members' own initialisers below only
  // keep them defined; the constructor overwrites every one.)
  CompressorOptions();
  std::string name = "none";
  std::string scale;      // sign: none | l1
  double ratio{};         // topk, randk: k = max(1, round(ratio * layer size)) unless k > 0
  std::int64_t k{};       // topk, randk: fixed k per layer (clamped to the layer size)
  bool plain_indices{};   // topk: 32-bit indices instead of ceil(log2 d_layer)
  bool unbiased{};        // randk: scale kept values by d/k
  int levels{};           // qsgd: s
  std::string norm;       // qsgd: l2 | max
  std::int64_t bucket{};  // qsgd: bucket size; 0 = the whole layer
  std::string coding;     // qsgd: fixed | elias
  int rank{};             // powersgd: r
  bool warm_start{};      // powersgd
  std::string mode;       // powersgd: reduce | per_client (compressor slot only)
  std::string section = "compressor";  // the config section, for error messages
};

// The two slots compressors fill: client messages and the model broadcast.
inline constexpr const char* kUplinkSlot = "compressor";
inline constexpr const char* kDownlinkSlot = "downlink_compressor";

using CompressorRegistration =
    Registration<std::unique_ptr<Compressor>(const CompressorOptions&), Field<CompressorOptions>>;

// The compressor registry (one explicit list, Note [Registration]).
const std::vector<CompressorRegistration>& compressors();
// The schema of slot kUplinkSlot or kDownlinkSlot.
Section compressor_section(const std::string& slot);
// The options of the compressor named in `section` (kUplinkSlot or kDownlinkSlot) of a resolved
// config; options not offered in that slot keep their defaults.
CompressorOptions compressor_options(const Config& cfg, const std::string& section);
// Throws UsageError for impossible options, naming o.section's key.
std::unique_ptr<Compressor> make_compressor(const CompressorOptions& o);

// For the factories' checks: UsageError "<section>.<key> = '<value>' is not allowed: expected one
// of <allowed>" unless value is one of them.
void require_one_of(const CompressorOptions& o, const std::string& key, const std::string& value,
                    std::initializer_list<const char*> allowed);

}  // namespace cohort::compress
