// compressor "topk": the k entries of largest magnitude (docs/algorithms.md §2).
#pragma once

#include <vector>

#include "compress/compressor.h"

namespace cohort::compress {

// k for a layer of n values: k_option > 0 ? min(k_option, n) : max(1, llround(ratio n)), and 0
// when n = 0. Shared with randk.
std::int64_t sparse_k(double ratio, std::int64_t k_option, std::int64_t n);

// Wire per layer (n values, k = sparse_k):
//   k float32 values, in ascending index order;
//   k indices, ascending, each in index_bits(n) = ceil(log2 n) bits (32 bits with plain_indices).
// Kept: the k largest |v_j| (compared as the float's bits with the sign cleared, so NaN counts as
// larger than infinity); among equal magnitudes the lower index first. Decoding zero-fills and
// writes the kept values unscaled.
class TopKCompressor final : public Compressor {
 public:
  TopKCompressor(double ratio, std::int64_t k, bool plain_indices)
      : ratio_(ratio), k_(k), plain_indices_(plain_indices) {}
  std::string name() const override { return "topk"; }
  void encode_layer(std::span<const float> v, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> state, Rng& private_rng, BitWriter& out) const override;
  void decode_layer(BitReader& in, const LayerShape& layer, const MessageContext& ctx,
                    std::span<float> out) const override;

 private:
  double ratio_;
  std::int64_t k_;
  bool plain_indices_;
};

// The entries top-k keeps: indices ascending and their values (v.size() < 2^32).
// Note [Top-k selection]: a deterministic sample of |v| (runs of consecutive values spread
// evenly over v) gives a threshold that at least k values pass with high probability; one SIMD
// pass collects the values at or above it; a 4096-bin histogram of the candidates' magnitudes
// and an exact pick within one bin give the k-th largest magnitude T; a last branch-free pass
// keeps the candidates above T and the lowest-index ones equal to T. If fewer than k values
// pass, the threshold is lowered and the pass repeated, so the result never depends on the
// sample, only the time does.
void topk_select(std::span<const float> v, std::int64_t k, std::vector<std::uint32_t>& idx,
                 std::vector<float>& val);
// The same, indices only (tests).
void topk_indices(std::span<const float> v, std::int64_t k, std::vector<std::uint32_t>& out);

// Its options, schema entry and factory (Note [Compressor options]).
CompressorRegistration topk_registration();

}  // namespace cohort::compress
