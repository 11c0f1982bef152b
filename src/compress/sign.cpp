// Note [Sign kernels]: encoding compares 16 values at a time with zero, narrows the four masks to
// bytes and takes one movemask (16 bits); decoding copies, per byte of sign bits, 8 floats from a
// 256-entry table of (+-scale) patterns.
#include "compress/sign.h"

#include <emmintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace cohort::compress {
namespace {

constexpr std::size_t kBlock = 1024;  // coordinates per float partial sum
// Note [Streaming stores]: decoded outputs of at least this many floats (4 MB, twice the L2 of
// the machines we measured) are written with non-temporal stores: writing a large buffer with
// ordinary stores first reads every line into the cache, halving the write bandwidth.
constexpr std::size_t kStreamMin = std::size_t{1} << 20;

template <bool kSum>
void sign_bits_impl(const float* v, std::size_t n, std::uint64_t* words, double* sum_abs) {
  const __m128 zero = _mm_setzero_ps();
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
  double total = 0;
  std::size_t i = 0;
  while (i + 64 <= n) {
    const std::size_t block_end = std::min(n, i + kBlock) / 64 * 64;
    __m128 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    for (; i < block_end; i += 64) {
      std::uint64_t w = 0;
      for (int q = 0; q < 4; ++q) {
        const float* p = v + i + 16 * q;
        const __m128 x0 = _mm_loadu_ps(p), x1 = _mm_loadu_ps(p + 4);
        const __m128 x2 = _mm_loadu_ps(p + 8), x3 = _mm_loadu_ps(p + 12);
        const __m128i m01 = _mm_packs_epi32(_mm_castps_si128(_mm_cmplt_ps(x0, zero)),
                                            _mm_castps_si128(_mm_cmplt_ps(x1, zero)));
        const __m128i m23 = _mm_packs_epi32(_mm_castps_si128(_mm_cmplt_ps(x2, zero)),
                                            _mm_castps_si128(_mm_cmplt_ps(x3, zero)));
        w |= static_cast<std::uint64_t>(_mm_movemask_epi8(_mm_packs_epi16(m01, m23))) << (16 * q);
        if constexpr (kSum) {
          s0 = _mm_add_ps(s0, _mm_and_ps(x0, abs_mask));
          s1 = _mm_add_ps(s1, _mm_and_ps(x1, abs_mask));
          s2 = _mm_add_ps(s2, _mm_and_ps(x2, abs_mask));
          s3 = _mm_add_ps(s3, _mm_and_ps(x3, abs_mask));
        }
      }
      words[i / 64] = w;
    }
    if constexpr (kSum) {
      alignas(16) float lanes[16];
      _mm_store_ps(lanes, s0);
      _mm_store_ps(lanes + 4, s1);
      _mm_store_ps(lanes + 8, s2);
      _mm_store_ps(lanes + 12, s3);
      for (float x : lanes) total += x;
    }
  }
  if (i < n) {  // the last n % 64 coordinates
    std::uint64_t w = 0;
    float tail = 0;
    for (std::size_t j = i; j < n; ++j) {
      w |= static_cast<std::uint64_t>(v[j] < 0.0f) << (j - i);
      if constexpr (kSum) tail += std::fabs(v[j]);
    }
    words[i / 64] = w;
    total += tail;
  }
  if (sum_abs != nullptr) *sum_abs = total;
}

thread_local std::vector<std::uint64_t> t_words;

std::uint64_t* word_buffer(std::size_t n) {
  const std::size_t need = (n + 63) / 64;
  if (t_words.size() < need) t_words.resize(need);
  return t_words.data();
}

}  // namespace

void sign_bits(const float* v, std::size_t n, std::uint64_t* words, double* sum_abs) {
  if (sum_abs != nullptr)
    sign_bits_impl<true>(v, n, words, sum_abs);
  else
    sign_bits_impl<false>(v, n, words, nullptr);
}

void SignCompressor::encode_layer(std::span<const float> v, const LayerShape&,
                                  const MessageContext&, std::span<float>, Rng&,
                                  BitWriter& out) const {
  const std::size_t n = v.size();
  std::uint64_t* words = word_buffer(n);
  double sum_abs = 0;
  sign_bits(v.data(), n, words, l1_ ? &sum_abs : nullptr);
  if (l1_) out.put_f32(n == 0 ? 0.0f : static_cast<float>(sum_abs / static_cast<double>(n)));
  out.put_bits(words, n);
}

void SignCompressor::decode_layer(BitReader& in, const LayerShape&, const MessageContext&,
                                  std::span<float> out) const {
  const std::size_t n = out.size();
  const float scale = l1_ ? in.get_f32() : 1.0f;
  std::uint64_t* words = word_buffer(n);
  in.get_bits(words, n);
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(words);
  float* o = out.data();
  std::size_t i = 0;
  if (n >= 4096) {
    // table[b][j] = bit j of b ? -scale : +scale
    static thread_local std::vector<float> table(256 * 8);
    for (int b = 0; b < 256; ++b)
      for (int j = 0; j < 8; ++j) table[8 * b + j] = (b >> j) & 1 ? -scale : scale;
    const float* tb = table.data();
    // Note [Streaming stores]: a large output goes around the cache (no read for ownership).
    if (n >= kStreamMin && reinterpret_cast<std::uintptr_t>(o) % 16 == 0) {
      for (; i + 8 <= n; i += 8) {
        const float* t = tb + 8 * bytes[i / 8];
        _mm_stream_ps(o + i, _mm_loadu_ps(t));
        _mm_stream_ps(o + i + 4, _mm_loadu_ps(t + 4));
      }
      _mm_sfence();
    }
    for (; i + 8 <= n; i += 8) {
      const float* t = tb + 8 * bytes[i / 8];
      _mm_storeu_ps(o + i, _mm_loadu_ps(t));
      _mm_storeu_ps(o + i + 4, _mm_loadu_ps(t + 4));
    }
  }
  for (; i < n; ++i) o[i] = (bytes[i / 8] >> (i % 8)) & 1 ? -scale : scale;
}

CompressorRegistration sign_registration() {
  return {"sign",
          "1 bit per coordinate, sign(0) = +1",
          {field(opt_enum("scale", "none", {"none", "l1"},
                          "none: decode to +-1 (signSGD); l1: to ||v||_1/d times the sign"),
                 &CompressorOptions::scale)},
          [](const CompressorOptions& o) -> std::unique_ptr<Compressor> {
            require_one_of(o, "scale", o.scale, {"none", "l1"});
            return std::make_unique<SignCompressor>(o.scale == "l1");
          }};
}

}  // namespace cohort::compress
