#include "core/block_sum.h"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/isa.h"

namespace cohort {

// ---- Kernels (one per ISA; every path gives the same bits) ----------------------------------

namespace {

// rint(y) for |y| < 2^63 in the current (round-to-nearest-even) mode: what every path computes.
inline std::int64_t round_scalar(double y) { return std::llrint(y); }

// The per-value step on values y = x c already computed: words[at + k] += rint(y[k]) inside the
// window, `slow` outside it. Returns the largest |y| taken on the fast path. The vector paths
// fall back to it for a vector with any lane outside the window.
inline double add_lanes(const double* y, int count, std::int64_t at, double window,
                        std::int64_t* words, detail::SlowLane slow, void* ctx) {
  double top = 0.0;
  for (int k = 0; k < count; ++k) {
    const double a = std::fabs(y[k]);
    if (a < window) {
      words[at + k] += round_scalar(y[k]);
      top = std::max(top, a);
    } else {
      slow(ctx, at + k, y[k]);
    }
  }
  return top;
}

// Lanes [from, n) of a block.
double block_add_generic(const float* x, std::int64_t from, std::int64_t n, double c,
                         double window, std::int64_t* words, detail::SlowLane slow, void* ctx) {
  double top = 0.0;
  for (std::int64_t i = from; i < n; ++i) {
    const double y = static_cast<double>(x[i]) * c;
    top = std::max(top, add_lanes(&y, 1, i, window, words, slow, ctx));
  }
  return top;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: the intrinsics' pass-through

// rint(y) for |y| < 2^62 with AVX2 (no double-to-int64 instruction): y = hi 2^32 + r exactly,
// hi = rint(y 2^-32), |r| <= 2^31, and rint(y) = hi 2^32 + rint(r) because hi 2^32 is even.
// Both roundings add 1.5 2^52, which leaves the integer in the low mantissa bits.
__attribute__((target("avx2,fma"))) inline __m256i round_avx2(__m256d y) {
  const __m256d magic = _mm256_set1_pd(0x1.8p52);
  const __m256i magic_bits = _mm256_castpd_si256(magic);
  const __m256d t = _mm256_add_pd(_mm256_mul_pd(y, _mm256_set1_pd(0x1.0p-32)), magic);
  const __m256i hi = _mm256_sub_epi64(_mm256_castpd_si256(t), magic_bits);
  const __m256d r =
      _mm256_sub_pd(y, _mm256_mul_pd(_mm256_sub_pd(t, magic), _mm256_set1_pd(0x1.0p32)));
  const __m256i lo = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(r, magic)), magic_bits);
  return _mm256_add_epi64(_mm256_slli_epi64(hi, 32), lo);
}

__attribute__((target("avx2,fma"))) double block_add_avx2(const float* x, std::int64_t n, double c,
                                                          double window, std::int64_t* words,
                                                          detail::SlowLane slow, void* ctx) {
  const __m256d vc = _mm256_set1_pd(c), vw = _mm256_set1_pd(window);
  const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  __m256d top = _mm256_setzero_pd();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xf = _mm256_loadu_ps(x + i);
    const __m256d y0 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xf)), vc);
    const __m256d y1 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xf, 1)), vc);
    const __m256d a0 = _mm256_and_pd(y0, abs_mask), a1 = _mm256_and_pd(y1, abs_mask);
    const int in = _mm256_movemask_pd(_mm256_cmp_pd(a0, vw, _CMP_LT_OQ)) &
                   _mm256_movemask_pd(_mm256_cmp_pd(a1, vw, _CMP_LT_OQ));
    if (in != 0xF) [[unlikely]] {
      alignas(32) double y[8];
      _mm256_store_pd(y, y0);
      _mm256_store_pd(y + 4, y1);
      top = _mm256_max_pd(_mm256_set1_pd(add_lanes(y, 8, i, window, words, slow, ctx)), top);
      continue;
    }
    auto* w = reinterpret_cast<__m256i*>(words + i);
    _mm256_storeu_si256(w, _mm256_add_epi64(_mm256_loadu_si256(w), round_avx2(y0)));
    _mm256_storeu_si256(w + 1, _mm256_add_epi64(_mm256_loadu_si256(w + 1), round_avx2(y1)));
    top = _mm256_max_pd(_mm256_max_pd(a0, a1), top);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, top);
  double t = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
  return std::max(t, block_add_generic(x, i, n, c, window, words, slow, ctx));
}

__attribute__((target("avx512f,avx512dq,avx512vl"))) double block_add_avx512(
    const float* x, std::int64_t n, double c, double window, std::int64_t* words,
    detail::SlowLane slow, void* ctx) {
  const __m512d vc = _mm512_set1_pd(c), vw = _mm512_set1_pd(window);
  __m512d top = _mm512_setzero_pd();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xf = _mm512_loadu_ps(x + i);
    const __m512d y0 = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xf)), vc);
    const __m512d y1 = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(xf, 1)), vc);
    const __m512d a0 = _mm512_abs_pd(y0), a1 = _mm512_abs_pd(y1);
    const __mmask8 in =
        _mm512_cmp_pd_mask(a0, vw, _CMP_LT_OQ) & _mm512_cmp_pd_mask(a1, vw, _CMP_LT_OQ);
    if (in != 0xFF) [[unlikely]] {
      alignas(64) double y[16];
      _mm512_store_pd(y, y0);
      _mm512_store_pd(y + 8, y1);
      top = _mm512_max_pd(_mm512_set1_pd(add_lanes(y, 16, i, window, words, slow, ctx)), top);
      continue;
    }
    std::int64_t* w = words + i;
    // Round to nearest even: the conversion follows MXCSR, which is never changed.
    _mm512_storeu_si512(w, _mm512_add_epi64(_mm512_loadu_si512(w), _mm512_cvtpd_epi64(y0)));
    _mm512_storeu_si512(w + 8, _mm512_add_epi64(_mm512_loadu_si512(w + 8), _mm512_cvtpd_epi64(y1)));
    top = _mm512_max_pd(_mm512_max_pd(a0, a1), top);
  }
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, top);
  const double t = *std::max_element(lanes, lanes + 8);
  return std::max(t, block_add_generic(x, i, n, c, window, words, slow, ctx));
}

void block_read_generic(const std::int64_t* words, std::int64_t n, double scale, double divisor,
                        float* out) {
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(static_cast<double>(words[i]) * scale / divisor);
}

// int64 -> double, correctly rounded, with AVX2 (which has no such conversion): the top 16 bits
// (as a multiple of 2^48) and the low 48 bits are placed exactly in two doubles by writing them
// under fixed exponents, and their sum rounds once.
__attribute__((target("avx2,fma"))) inline __m256d int64_to_double_avx2(__m256i v) {
  // High part: (v >> 48) 2^32 added to the bits of 3 2^67 (whose ulp is 2^16) is the double
  // 3 2^67 + (v >> 48) 2^48.
  __m256i hi = _mm256_srai_epi32(v, 16);
  hi = _mm256_blend_epi16(hi, _mm256_setzero_si256(), 0x33);
  hi = _mm256_add_epi64(hi, _mm256_castpd_si256(_mm256_set1_pd(0x1.8p68)));
  // Low part: the low 48 bits under the exponent of 2^52: value 2^52 + (v mod 2^48).
  const __m256i lo = _mm256_blend_epi16(v, _mm256_castpd_si256(_mm256_set1_pd(0x1.0p52)), 0x88);
  const __m256d h = _mm256_sub_pd(_mm256_castsi256_pd(hi), _mm256_set1_pd(0x1.8p68 + 0x1.0p52));
  return _mm256_add_pd(h, _mm256_castsi256_pd(lo));
}

__attribute__((target("avx2,fma"))) void block_read_avx2(const std::int64_t* words, std::int64_t n,
                                                         double scale, double divisor, float* out) {
  const __m256d vs = _mm256_set1_pd(scale), vd = _mm256_set1_pd(divisor);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const auto* w = reinterpret_cast<const __m256i*>(words + i);
    const __m256d s0 =
        _mm256_div_pd(_mm256_mul_pd(int64_to_double_avx2(_mm256_loadu_si256(w)), vs), vd);
    const __m256d s1 =
        _mm256_div_pd(_mm256_mul_pd(int64_to_double_avx2(_mm256_loadu_si256(w + 1)), vs), vd);
    _mm256_storeu_ps(out + i, _mm256_set_m128(_mm256_cvtpd_ps(s1), _mm256_cvtpd_ps(s0)));
  }
  block_read_generic(words + i, n - i, scale, divisor, out + i);
}

__attribute__((target("avx512f,avx512dq,avx512vl"))) void block_read_avx512(
    const std::int64_t* words, std::int64_t n, double scale, double divisor, float* out) {
  const __m512d vs = _mm512_set1_pd(scale), vd = _mm512_set1_pd(divisor);
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512d s0 =
        _mm512_div_pd(_mm512_mul_pd(_mm512_cvtepi64_pd(_mm512_loadu_si512(words + i)), vs), vd);
    const __m512d s1 =
        _mm512_div_pd(_mm512_mul_pd(_mm512_cvtepi64_pd(_mm512_loadu_si512(words + i + 8)), vs), vd);
    _mm512_storeu_ps(out + i, _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(s0)),
                                                 _mm512_cvtpd_ps(s1), 1));
  }
  block_read_generic(words + i, n - i, scale, divisor, out + i);
}

#pragma GCC diagnostic pop

}  // namespace

namespace detail {

double block_add(const float* x, std::int64_t n, double c, double window, std::int64_t* words,
                 SlowLane slow, void* ctx) {
  switch (active_isa()) {
    case Isa::kAvx512:
      return block_add_avx512(x, n, c, window, words, slow, ctx);
    case Isa::kAvx2:
      return block_add_avx2(x, n, c, window, words, slow, ctx);
    default:
      return block_add_generic(x, 0, n, c, window, words, slow, ctx);
  }
}

void block_read(const std::int64_t* words, std::int64_t n, double scale, double divisor,
                float* out) {
  switch (active_isa()) {
    case Isa::kAvx512:
      return block_read_avx512(words, n, scale, divisor, out);
    case Isa::kAvx2:
      return block_read_avx2(words, n, scale, divisor, out);
    default:
      return block_read_generic(words, n, scale, divisor, out);
  }
}

}  // namespace detail

// ---- BlockSum --------------------------------------------------------------------------------

namespace {

constexpr std::int32_t kCodeBias = 4096;  // exponent codes are e + kCodeBias > 0; 0: no term

// The exponent e with |v| < 2^e (v finite, nonzero).
int exponent_above(double v) {
  int e = 0;
  std::frexp(v, &e);
  return e;
}

// Base-2^p digits of rint(y) (Note [Block sum overflow]): rint(y) = sum_j digit[j] 2^(j p), every
// |digit[j]| < 2^p, all with the sign of y. Returns the number of digits written (at most 64).
int digits_of(double y, int p, std::int64_t* digit) {
  const double a = std::nearbyint(std::fabs(y));  // symmetric: rint(-y) = -rint(y)
  const std::int64_t sign = y < 0 ? -1 : 1;
  int k = 0;
  const double m = std::frexp(a, &k);  // a = m 2^k, 0.5 <= m < 1
  // a = mant 2^(k - 53) with mant < 2^53 an integer (a is an integer, so its low bits are zero).
  const auto mant = static_cast<std::uint64_t>(std::ldexp(m, 53));
  const int shift = k - 53;
  const std::uint64_t mask = (std::uint64_t{1} << p) - 1;
  int count = 0;
  for (int j = 0; j * p < std::max(k, 1); ++j) {
    // Bits [j p, (j+1) p) of mant 2^shift.
    const int s = shift - j * p;
    std::uint64_t bits;
    if (s >= 0)
      bits = s >= 128
                 ? 0
                 : static_cast<std::uint64_t>((static_cast<unsigned __int128>(mant) << s) & mask);
    else
      bits = -s >= 64 ? 0 : (mant >> -s) & mask;
    digit[count++] = sign * static_cast<std::int64_t>(bits);
  }
  return count;
}

struct AddContext {
  int precision;
  double limit, top;
  std::int64_t* words;
  std::vector<std::int64_t>* levels;  // the block's higher digits, kBlock per level
  int* used;                          // levels in use
  bool* valid;
};

}  // namespace

BlockSum::BlockSum(std::int64_t d, std::int64_t max_terms)
    : d_(d), max_terms_(std::max<std::int64_t>(1, max_terms)) {
  if (d < 0) throw std::invalid_argument("BlockSum: negative size");
  const int h = std::bit_width(static_cast<std::uint64_t>(max_terms_));
  if (h > 40) throw std::invalid_argument("BlockSum: more than 2^40 terms per sum");
  p_ = 62 - h;
  const std::int64_t nb = (d + kBlock - 1) / kBlock;
  words_.assign(static_cast<std::size_t>(d), 0);
  scales_.assign(static_cast<std::size_t>(nb), 0);
  block_max_.assign(static_cast<std::size_t>(nb), 0.0);
  meta_.assign(static_cast<std::size_t>(2 * nb), 0);
  levels_.resize(static_cast<std::size_t>(nb));
  used_.assign(static_cast<std::size_t>(nb), 0);
  packed_at_.assign(static_cast<std::size_t>(nb), -1);
}

void BlockSum::clear() {
  std::fill(words_.begin(), words_.end(), 0);
  std::fill(block_max_.begin(), block_max_.end(), 0.0);
  std::fill(meta_.begin(), meta_.end(), 0);
  for (auto& s : levels_) std::vector<std::int64_t>().swap(s);
  std::fill(used_.begin(), used_.end(), 0);
  std::fill(packed_at_.begin(), packed_at_.end(), -1);
  packed_.clear();
  valid_ = true;
  terms_ = 0;
}

void BlockSum::add(const float* x, double w) {
  if (++terms_ > max_terms_)
    throw std::logic_error("BlockSum: more terms than the sum was sized for");
  const double window = std::ldexp(1.0, p_);
  for (std::int64_t b = 0; b < blocks(); ++b) {
    const std::int64_t lo = b * kBlock, n = std::min(kBlock, d_ - lo);
    const int e = scales_[b];
    AddContext ctx{
        p_,     std::ldexp(kTermLimit, p_ - e), 0.0, words_.data() + lo, &levels_[b], &used_[b],
        &valid_};
    // A lane outside the window: exact through the block's higher digits
    // (Note [Block sum overflow]), or an invalid term.
    const auto slow = [](void* p, std::int64_t i, double y) {
      auto& c = *static_cast<AddContext*>(p);
      const double a = std::fabs(y);
      if (!(a < c.limit)) {
        *c.valid = false;
        return;
      }
      c.top = std::max(c.top, a);
      std::int64_t digit[64];
      const int count = digits_of(y, c.precision, digit);
      c.words[i] += digit[0];
      if (count - 1 > *c.used) {
        c.levels->resize(static_cast<std::size_t>((count - 1) * kBlock), 0);
        *c.used = count - 1;
      }
      for (int j = 1; j < count; ++j)
        (*c.levels)[static_cast<std::size_t>((j - 1) * kBlock + i)] += digit[j];
    };
    const double c = std::ldexp(w, p_ - e);
    const double top = detail::block_add(x + lo, n, c, window, words_.data() + lo, slow, &ctx);
    block_max_[b] = std::max({block_max_[b], top, ctx.top});
  }
}

void BlockSum::fit_scales(std::span<const float* const> rows, std::span<const double> weights) {
  for (std::int64_t b = 0; b < blocks(); ++b) {
    const std::int64_t lo = b * kBlock, hi = std::min(d_, lo + kBlock);
    double top = 0.0;
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::int64_t i = lo; i < hi; ++i) {
        const double v = std::fabs(static_cast<double>(rows[r][i]) * weights[r]);
        if (v < kTermLimit) top = std::max(top, v);  // larger ones make the sum invalid
      }
    scales_[b] = static_cast<std::int16_t>(top > 0 ? std::max(kMinScale, exponent_above(top)) : 0);
  }
}

void BlockSum::set_scales(std::span<const std::int16_t> s) {
  if (s.size() != scales_.size()) throw std::invalid_argument("BlockSum: scales of another size");
  for (const auto e : s)
    if (e < kMinScale || e > kMaxScale) throw std::invalid_argument("BlockSum: scale out of range");
  std::copy(s.begin(), s.end(), scales_.begin());
}

std::span<std::int32_t> BlockSum::seal() {
  for (std::int64_t b = 0; b < blocks(); ++b) {
    const double top = block_max_[b];
    meta_[2 * b] = top > 0 ? exponent_above(top) + (scales_[b] - p_) + kCodeBias : 0;
    meta_[2 * b + 1] = used_[b];
  }
  return meta_;
}

std::span<std::int64_t> BlockSum::pack_spill() {
  std::int64_t total = 0;
  for (std::int64_t b = 0; b < blocks(); ++b) {
    packed_at_[b] = meta_[2 * b + 1] > 0 ? total : -1;
    total += meta_[2 * b + 1] * std::min(kBlock, d_ - b * kBlock);
  }
  packed_.assign(static_cast<std::size_t>(total), 0);
  for (std::int64_t b = 0; b < blocks(); ++b) {
    const std::int64_t n = std::min(kBlock, d_ - b * kBlock);
    for (int j = 0; j < used_[b]; ++j)
      std::copy_n(levels_[b].begin() + j * kBlock, n, packed_.begin() + packed_at_[b] + j * n);
  }
  return packed_;
}

double BlockSum::coordinate(std::int64_t b, std::int64_t i) const {
  const double scale_exp = scales_[b] - p_;
  const std::int64_t w = words_[static_cast<std::size_t>(i)];
  if (packed_at_[b] < 0) return std::ldexp(static_cast<double>(w), static_cast<int>(scale_exp));
  // sum_j D_j 2^(j P + E - P), each D_j cut into two exact halves, summed exactly and rounded.
  const std::int64_t n = std::min(kBlock, d_ - b * kBlock), k = i - b * kBlock;
  std::vector<double> parts;
  const auto put = [&](double x) {  // Shewchuk's grow-expansion: parts stay exact
    std::size_t m = 0;
    for (double y : parts) {
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double hi = x + y, lo = y - (hi - x);
      if (lo != 0.0) parts[m++] = lo;
      x = hi;
    }
    parts.resize(m);
    parts.push_back(x);
  };
  for (int j = 0; j <= meta_[2 * b + 1]; ++j) {
    const std::int64_t D =
        j == 0 ? w : packed_[static_cast<std::size_t>(packed_at_[b] + (j - 1) * n + k)];
    const int at = j * p_ + static_cast<int>(scale_exp);
    put(std::ldexp(static_cast<double>(D >> 32), at + 32));
    put(std::ldexp(static_cast<double>(D & 0xffffffff), at));
  }
  double sum = 0.0;
  for (double x : parts) sum += x;  // increasing magnitude, non-overlapping
  return sum;
}

double BlockSum::value(std::int64_t i) const { return coordinate(i / kBlock, i); }

void BlockSum::read(float* out, double divisor) {
  for (std::int64_t b = 0; b < blocks(); ++b) {
    const std::int64_t lo = b * kBlock, n = std::min(kBlock, d_ - lo);
    if (packed_at_[b] < 0) {
      detail::block_read(words_.data() + lo, n, std::ldexp(1.0, scales_[b] - p_), divisor,
                         out + lo);
      continue;
    }
    for (std::int64_t i = lo; i < lo + n; ++i)
      out[i] = static_cast<float>(coordinate(b, i) / divisor);
  }
  // The scales follow this sum's largest terms, from the reduced codes every rank holds.
  for (std::int64_t b = 0; b < blocks(); ++b)
    if (meta_[2 * b] > 0)
      scales_[b] = static_cast<std::int16_t>(
          std::clamp(meta_[2 * b] - kCodeBias + kGrowth, kMinScale, kMaxScale));
}

}  // namespace cohort
