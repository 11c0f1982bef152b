#include "compress/none.h"

namespace cohort::compress {

void NoneCompressor::encode_layer(std::span<const float> v, const LayerShape&,
                                  const MessageContext&, std::span<float>, Rng&,
                                  BitWriter& out) const {
  out.put_bits(v.data(), 32 * static_cast<std::uint64_t>(v.size()));
}

void NoneCompressor::decode_layer(BitReader& in, const LayerShape&, const MessageContext&,
                                  std::span<float> out) const {
  in.get_bits(out.data(), 32 * static_cast<std::uint64_t>(out.size()));
}

CompressorRegistration none_registration() {
  return {"none", "send float32 values, 32 bits per coordinate", {}, [](const CompressorOptions&) {
            return std::make_unique<NoneCompressor>();
          }};
}

}  // namespace cohort::compress
