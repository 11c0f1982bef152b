// compressor "qsgd": stochastic quantisation to s levels per bucket (docs/algorithms.md §2).
#pragma once

#include "compress/compressor.h"

namespace cohort::compress {

// Wire per layer: the layer's n values in buckets of `bucket` consecutive values (0: one bucket;
// the last may be shorter). Per bucket:
//   float32 norm nu: l2: float(sqrt(sum v_j^2)), the sum taken in float over blocks of 1024
//   values (16 partial sums) and the block sums added in double; max: max |v_j|;
//   then per value, in order, its level l_j in [0, s] and sign bit g_j (1 when v_j has its sign
//   bit set -- v_j < 0 -- and l_j > 0, else 0: a zero level carries no sign):
//     coding fixed: a (1 + b)-bit field, b = ceil(log2(s + 1)), LSB-first, holding
//                   g_j | l_j << 1 (the sign bit first, then the level's bits, low first);
//     coding elias: the Elias-gamma code of x = l_j + 1 -- N = floor(log2 x) zero bits, a one,
//                   then the N low bits of x, low first (the textbook code with its mantissa
//                   reversed, to suit the LSB-first stream; lengths are the textbook's) --
//                   then, when l_j > 0, g_j. Level 0 is the single bit 1.
// Decoding: v_j = (g_j ? -1 : 1) * (float(l_j) * (nu / float(s))), all in float.
//
// Note [QSGD rounding]
// In float32: R = float(256 s) / nu (0 when nu = 0), z_j = min(|v_j| * R, float(256 s)),
// Z = floor(z_j), l = floor(Z / 256) and t = Z mod 256 -- so l = floor(y) and t = floor(256 p)
// for y = z_j / 256 = s |v_j| / nu and p = y - l -- and f = z_j - Z (exact, = 256 p - t).
// The level is l + 1 with probability p and l otherwise, decided by a uniform u_j drawn lazily
// to 40 bits, so that one random byte per value is usually enough (a 32-bit uniform per value
// would make Philox the bottleneck):
//   key = private_rng.next_u64(), one draw per layer (Note [Compression streams]);
//   byte r_j = byte (j % 4) of value j / 4 of the stream Rng(key, 0, 0, kCompression),
//   j the value's index in the layer;
//   r_j < t: level l + 1; r_j > t: level l; r_j == t (probability 1/256): the next value w of
//   the stream Rng(key, 1, 0, kCompression) (these ties take values in index order) decides:
//   level l + 1 iff w < f * 2^32.
// So P(level l + 1) = (t + ceil(f 2^32) / 2^32) / 256, within 2^-40 of p: the rounding is
// unbiased up to float32 arithmetic. Every step is an IEEE float32 operation (no FMA), so the
// levels are a pure function of (v, s, nu, key).
class QsgdCompressor final : public Compressor {
 public:
  static constexpr int kMaxLevels = 65535;
  QsgdCompressor(int levels, bool max_norm, std::int64_t bucket, bool elias)
      : s_(levels), max_norm_(max_norm), bucket_(bucket), elias_(elias) {}
  std::string name() const override { return "qsgd"; }
  void encode_layer(std::span<const float> v, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> state, Rng& private_rng, BitWriter& out) const override;
  void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> out) const override;

 private:
  int s_;
  bool max_norm_;
  std::int64_t bucket_;
  bool elias_;
};

// For tests and benchmarks: selects the SIMD kernels for s <= 127 (encoder and decoder), "avx512",
// "avx2" or "sse2", or "" to follow the ISA decision again (Note [One ISA decision], core/isa.h:
// the kernels of active_isa(), SSE2 for the generic path); false when this CPU lacks it. All give
// identical bytes and values.
bool select_qsgd_kernel(const std::string& isa);

// Its options, schema entry and factory (Note [Compressor options]).
CompressorRegistration qsgd_registration();

}  // namespace cohort::compress
