// compressor "sign": one bit per coordinate (docs/algorithms.md §2).
#pragma once

#include "compress/compressor.h"

namespace cohort::compress {

// Wire per layer (n coordinates):
//   scale l1 only: float32 scale = ||v||_1 / n (the float nearest the double quotient; the sum is
//                  taken in float over blocks of 1024 coordinates, 16 partial sums, and the block
//                  sums are added in double);
//   n bits, LSB-first: bit j = 1 when v_j < 0, else 0 (sign(0) = +1; -0 and NaN count as +).
// Decoding gives +1 / -1 (scale none) or +scale / -scale (scale l1).
class SignCompressor final : public Compressor {
 public:
  explicit SignCompressor(bool l1_scale) : l1_(l1_scale) {}
  std::string name() const override { return "sign"; }
  void encode_layer(std::span<const float> v, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> state, Rng& private_rng, BitWriter& out) const override;
  void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> out) const override;

 private:
  bool l1_;
};

// Sign bits of v (bit j of the LSB-first words = v_j < 0), ceil(n/64) words, and, when sum_abs
// is not null, sum |v_j| as described above. Exposed for tests and benchmarks.
void sign_bits(const float* v, std::size_t n, std::uint64_t* words, double* sum_abs);

// Its options, schema entry and factory (Note [Compressor options]).
CompressorRegistration sign_registration();

}  // namespace cohort::compress
