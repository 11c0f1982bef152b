#include "compress/sparse.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/isa.h"

namespace cohort::compress {

std::vector<Field<CompressorOptions>> sparsity_fields() {
  return {field(opt_float("ratio", 0.01, "kept share of each layer when k is 0", 0, 1, true),
                &CompressorOptions::ratio),
          field(opt_int("k", 0,
                        "coordinates kept per layer (clamped to the layer size); 0: use ratio"),
                &CompressorOptions::k)};
}

void check_sparsity(const CompressorOptions& o) {
  require_usage(o.k >= 0, fmt::format("{0}.k = {1} is not allowed: expected >= 0 "
                                      "(0: use {0}.ratio)",
                                      o.section, o.k));
  if (o.k == 0)
    require_usage(
        o.ratio > 0.0 && o.ratio <= 1.0,
        fmt::format("{}.ratio = {} is not allowed: expected 0 < ratio <= 1", o.section, o.ratio));
}

namespace {

// Outputs below this size stay in cache for whoever reads them next: plain stores.
constexpr std::size_t kStreamBytes = std::size_t{4} << 20;

template <bool kStream>
__attribute__((target("avx512f"))) void fill_lines_avx512(const std::uint32_t* idx, std::size_t k,
                                                          const float* val, float* o,
                                                          std::size_t n) {
  std::size_t i = 0, p = 0;
  const std::size_t head =
      std::min(n, ((64 - reinterpret_cast<std::uintptr_t>(o) % 64) % 64) / sizeof(float));
  for (; i < head; ++i) o[i] = p < k && idx[p] == i ? val[p++] : 0.0f;
  const __m512 zero = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    __m512 line = zero;
    if (p < k && idx[p] < i + 16) {
      // The values of this line are consecutive in val, in lane order: expand them into the
      // lanes their indices name.
      std::uint32_t mask = 0;
      std::size_t q = p;
      for (; q < k && idx[q] < i + 16; ++q) mask |= 1u << (idx[q] - i);
      line = _mm512_maskz_expandloadu_ps(static_cast<__mmask16>(mask), val + p);
      p = q;
    }
    if constexpr (kStream)
      _mm512_stream_ps(o + i, line);
    else
      _mm512_store_ps(o + i, line);
  }
  for (; i < n; ++i) o[i] = p < k && idx[p] == i ? val[p++] : 0.0f;
  if constexpr (kStream) _mm_sfence();
}

// The AVX2 twin: a line with values is assembled in a zeroed 64-byte buffer (no expand
// instruction), then written as two 8-lane stores like an empty one.
template <bool kStream>
__attribute__((target("avx2"))) void fill_lines_avx2(const std::uint32_t* idx, std::size_t k,
                                                     const float* val, float* o, std::size_t n) {
  std::size_t i = 0, p = 0;
  const std::size_t head =
      std::min(n, ((64 - reinterpret_cast<std::uintptr_t>(o) % 64) % 64) / sizeof(float));
  for (; i < head; ++i) o[i] = p < k && idx[p] == i ? val[p++] : 0.0f;
  const __m256 zero = _mm256_setzero_ps();
  alignas(64) float line[16];
  for (; i + 16 <= n; i += 16) {
    __m256 lo = zero, hi = zero;
    if (p < k && idx[p] < i + 16) {
      _mm256_store_ps(line, zero);
      _mm256_store_ps(line + 8, zero);
      for (; p < k && idx[p] < i + 16; ++p) line[idx[p] - i] = val[p];
      lo = _mm256_load_ps(line);
      hi = _mm256_load_ps(line + 8);
    }
    if constexpr (kStream) {
      _mm256_stream_ps(o + i, lo);
      _mm256_stream_ps(o + i + 8, hi);
    } else {
      _mm256_store_ps(o + i, lo);
      _mm256_store_ps(o + i + 8, hi);
    }
  }
  for (; i < n; ++i) o[i] = p < k && idx[p] == i ? val[p++] : 0.0f;
  if constexpr (kStream) _mm_sfence();
}

}  // namespace

void require_index_range(std::size_t n, const char* who) {
  if (n > 0xFFFFFFFFull)
    throw UsageError(std::string(who) + ": a layer of more than 2^32 - 1 values is not supported");
}

void write_sparse_u32(std::span<const std::uint32_t> idx, const float* val, std::span<float> out) {
  const Isa isa = active_isa();  // Note [One ISA decision]
  float* o = out.data();
  const std::size_t n = out.size();
  const bool stream = n * sizeof(float) >= kStreamBytes;
  if (isa == Isa::kAvx512) {
    if (stream)
      fill_lines_avx512<true>(idx.data(), idx.size(), val, o, n);
    else
      fill_lines_avx512<false>(idx.data(), idx.size(), val, o, n);
    return;
  }
  if (isa == Isa::kAvx2) {
    if (stream)
      fill_lines_avx2<true>(idx.data(), idx.size(), val, o, n);
    else
      fill_lines_avx2<false>(idx.data(), idx.size(), val, o, n);
    return;
  }
  std::memset(o, 0, n * sizeof(float));
  for (std::size_t i = 0; i < idx.size(); ++i) o[idx[i]] = val[i];
}

}  // namespace cohort::compress
