// compressor "none": the message as float32, verbatim (docs/algorithms.md §2).
#pragma once

#include "compress/compressor.h"

namespace cohort::compress {

// Wire per layer: the n values as float32 bit patterns, 32 n bits.
class NoneCompressor final : public Compressor {
 public:
  std::string name() const override { return "none"; }
  void encode_layer(std::span<const float> v, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> state, Rng& private_rng, BitWriter& out) const override;
  void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> out) const override;
};

// Its schema entry and factory (Note [Compressor options]).
CompressorRegistration none_registration();

}  // namespace cohort::compress
