// compressor "randk": k coordinates chosen uniformly at random, the same on every client
// (docs/algorithms.md §2).
#pragma once

#include <vector>

#include "compress/compressor.h"

namespace cohort::compress {

// Wire per layer (n values, k = sparse_k(ratio, k, n)):
//   64-bit index seed s = ctx.shared_rng(layer.index).next_u64() (the round's shared stream for
//   the layer: identical on every client and rank);
//   k float32 values in ascending index order, each v_j, or with unbiased
//   v_j * float(double(n) / k) (one float multiply).
// Note [Rand-k indices]: the indices are a function of (s, n, k) only, so a decoder needs just
// the bytes. m = (2k <= n) ? k : n - k distinct indices are drawn from the stream
// Rng(s, 0, 0, Purpose::kCompression) (next_u32 in order): each draw is Lemire's unbiased
// multiply-shift j = (x * n) >> 32 with rejection of x when (x * n) mod 2^32 < 2^32 mod n, and a
// j drawn before is drawn again. The kept set is the m drawn indices (2k <= n) or the n - m
// others, listed in ascending order.
class RandKCompressor final : public Compressor {
 public:
  RandKCompressor(double ratio, std::int64_t k, bool unbiased)
      : ratio_(ratio), k_(k), unbiased_(unbiased) {}
  std::string name() const override { return "randk"; }
  void encode_layer(std::span<const float> v, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> state, Rng& private_rng, BitWriter& out) const override;
  void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> out) const override;

 private:
  double ratio_;
  std::int64_t k_;
  bool unbiased_;
};

// The k indices Note [Rand-k indices] defines, ascending (0 < n < 2^32, k <= n).
void randk_indices(std::uint64_t seed, std::uint32_t n, std::uint32_t k,
                   std::vector<std::uint32_t>& out);

// Its options, schema entry and factory (Note [Compressor options]).
CompressorRegistration randk_registration();

}  // namespace cohort::compress
