#include "compress/randk.h"

#include <bit>
#include <stdexcept>

#include "compress/philox_bulk.h"
#include "compress/sparse.h"
#include "compress/topk.h"
#include "core/errors.h"

namespace cohort::compress {

void randk_indices(std::uint64_t seed, std::uint32_t n, std::uint32_t k,
                   std::vector<std::uint32_t>& out) {
  out.resize(k);
  if (k == 0) return;
  const bool complement = 2 * static_cast<std::uint64_t>(k) > n;
  const std::uint32_t m = complement ? n - k : k;
  thread_local std::vector<std::uint64_t> bitmap;
  bitmap.assign((static_cast<std::size_t>(n) + 63) / 64, 0);
  std::uint64_t* marked = bitmap.data();
  BulkRng rng(seed, 0, 0, Purpose::kCompression);
  const std::uint32_t reject_below = static_cast<std::uint32_t>(-n) % n;  // 2^32 mod n
  for (std::uint32_t drawn = 0; drawn < m;) {
    std::uint64_t p = static_cast<std::uint64_t>(rng.next_u32()) * n;
    while (static_cast<std::uint32_t>(p) < reject_below)
      p = static_cast<std::uint64_t>(rng.next_u32()) * n;
    const auto j = static_cast<std::uint32_t>(p >> 32);
    const std::uint64_t bit = std::uint64_t{1} << (j % 64);
    drawn += (marked[j / 64] & bit) == 0;
    marked[j / 64] |= bit;
  }
  // The kept set in ascending order: the marked bits, or the unmarked ones below n.
  const std::size_t words = bitmap.size();
  const std::uint64_t flip = complement ? ~std::uint64_t{0} : 0;
  std::uint32_t* o = out.data();
  std::size_t got = 0;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w = marked[i] ^ flip;
    if (i + 1 == words && n % 64 != 0) w &= (std::uint64_t{1} << (n % 64)) - 1;
    for (; w != 0; w &= w - 1)
      o[got++] = static_cast<std::uint32_t>(64 * i + static_cast<std::size_t>(std::countr_zero(w)));
  }
}

namespace {

thread_local std::vector<std::uint32_t> t_idx;
thread_local std::vector<float> t_val;

// The index set in t_idx was drawn for (seed, n, k). The draw is the costly part of decoding,
// and in cohort a decoder usually holds the set already: every message is decoded right after
// its encoding (error feedback, the reduce plan), and the indices are shared by all clients of a
// round and layer. So randk_set draws only when the key changes.
struct IndexKey {
  std::uint64_t seed = 0;
  std::uint32_t n = 0, k = 0;
  bool valid = false;
};
thread_local IndexKey t_key;

void randk_set(std::uint64_t seed, std::uint32_t n, std::uint32_t k) {
  if (t_key.valid && t_key.seed == seed && t_key.n == n && t_key.k == k && t_idx.size() == k)
    return;
  t_key.valid = false;  // stays invalid if the draw throws
  randk_indices(seed, n, k, t_idx);
  t_key = IndexKey{seed, n, k, true};
}

}  // namespace

void RandKCompressor::encode_layer(std::span<const float> v, const LayerShape& layer,
                                   const MessageContext& ctx, std::span<float>, Rng&,
                                   BitWriter& out) const {
  const std::size_t n = v.size();
  require_index_range(n, "randk");
  const auto k = static_cast<std::uint32_t>(sparse_k(ratio_, k_, static_cast<std::int64_t>(n)));
  const std::uint64_t seed = ctx.shared_rng(layer.index).next_u64();
  randk_set(seed, static_cast<std::uint32_t>(n), k);
  t_val.resize(k);
  if (unbiased_) {
    const float scale = static_cast<float>(static_cast<double>(n) / static_cast<double>(k));
    for (std::uint32_t i = 0; i < k; ++i) t_val[i] = v[t_idx[i]] * scale;
  } else {
    for (std::uint32_t i = 0; i < k; ++i) t_val[i] = v[t_idx[i]];
  }
  out.put_u64(seed);
  out.put_bits(t_val.data(), 32 * static_cast<std::uint64_t>(k));
}

void RandKCompressor::decode_layer(BitReader& in, const LayerShape&, const MessageContext&,
                                   std::span<float> out) const {
  const std::size_t n = out.size();
  require_index_range(n, "randk");
  const auto k = static_cast<std::uint32_t>(sparse_k(ratio_, k_, static_cast<std::int64_t>(n)));
  const std::uint64_t seed = in.get_u64();
  randk_set(seed, static_cast<std::uint32_t>(n), k);
  t_val.resize(k);
  in.get_bits(t_val.data(), 32 * static_cast<std::uint64_t>(k));
  write_sparse<std::uint32_t>(t_idx, t_val.data(), out);
}

CompressorRegistration randk_registration() {
  auto options = sparsity_fields();
  options.push_back(
      field(opt_bool("unbiased", false, "scale kept values by d/k"), &CompressorOptions::unbiased));
  return {"randk", "k uniformly random coordinates per layer, shared by all clients of the round",
          std::move(options), [](const CompressorOptions& o) -> std::unique_ptr<Compressor> {
            check_sparsity(o);
            return std::make_unique<RandKCompressor>(o.ratio, o.k, o.unbiased);
          }};
}

}  // namespace cohort::compress
