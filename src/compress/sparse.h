// Shared by topk and randk: a sparse message (ascending indices and their values) written into a
// dense output.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "compress/compressor.h"

namespace cohort::compress {

// The options topk and randk share: ratio and k (Note [Compressor options]), and the check of
// them that the schema cannot make for a caller without a config (ratio matters only when k = 0).
std::vector<Field<CompressorOptions>> sparsity_fields();
void check_sparsity(const CompressorOptions& o);

// Sparse indices are 32-bit: a layer must hold fewer than 2^32 values (UsageError otherwise).
void require_index_range(std::size_t n, const char* who);

// out = 0 except out[idx[i]] = val[i]; idx ascending and < out.size().
//
// One pass over the output: each 64-byte line is built in registers (zeros, plus the values whose
// index falls in it) and written with a streaming store, which skips reading the line first
// (about 1.3x glibc's memset here, and no second pass for the scatter). Without AVX-512: memset,
// then the scatter in ascending order.
void write_sparse_u32(std::span<const std::uint32_t> idx, const float* val, std::span<float> out);

template <class Index>
void write_sparse(std::span<const Index> idx, const float* val, std::span<float> out) {
  if constexpr (sizeof(Index) == sizeof(std::uint32_t)) {
    write_sparse_u32(std::span<const std::uint32_t>(
                         reinterpret_cast<const std::uint32_t*>(idx.data()), idx.size()),
                     val, out);
  } else {
    float* o = out.data();
    std::memset(o, 0, out.size() * sizeof(float));
    for (std::size_t i = 0; i < idx.size(); ++i) o[static_cast<std::size_t>(idx[i])] = val[i];
  }
}

}  // namespace cohort::compress
