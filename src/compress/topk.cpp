#include "compress/topk.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "compress/sparse.h"
#include "core/errors.h"
#include "core/isa.h"

namespace cohort::compress {

std::int64_t sparse_k(double ratio, std::int64_t k_option, std::int64_t n) {
  if (n <= 0) return 0;
  if (k_option > 0) return std::min(k_option, n);
  return std::clamp<std::int64_t>(std::llround(ratio * static_cast<double>(n)), 1, n);
}

namespace {

inline std::uint32_t magnitude_key(std::uint32_t bits) { return bits & 0x7FFFFFFFu; }

constexpr std::size_t kSample = 16384;    // sampled magnitudes for the threshold
constexpr std::size_t kSampleRuns = 512;  // ... in runs of 32 consecutive values

// Candidate entries: index and the value's bit pattern. The vectors only grow (their size is
// the capacity), `count` is the number in use.
struct Candidates {
  std::vector<std::uint32_t> idx, bits;
  std::size_t count = 0;
  void ensure(std::size_t need) {
    if (idx.size() < need) {
      const std::size_t cap = std::max(need, 2 * idx.size());
      idx.resize(cap);
      bits.resize(cap);
    }
  }
};

// Collects every value whose magnitude key is >= threshold (threshold >= 1), in index order.
//
// The AVX-512 path compares 16 keys per instruction and reads the vector as kStreams
// interleaved streams (one 64-value step of each eighth in turn): one sequential stream is
// limited by the hardware prefetcher to about half of what the memory delivers to several. Each
// stream collects into its own list; the lists are then joined in order. The AVX2 and SSE2 paths
// below give the same list.
struct Stream {
  Candidates c;
  std::size_t begin = 0, end = 0;
};

// Appends the values of one 64-value step whose key exceeds `below` to c, branch-free: each
// 16-value vector's matches are packed (vpcompressd) and stored whole; the slack past c.count is
// overwritten by the next store. (A branch on "any match in this step" mispredicts about half the
// time at top-1% thresholds.)
[[gnu::always_inline]] inline void take_step_avx512(const std::uint32_t* vb, std::size_t i,
                                                    __m512i abs_mask, __m512i below,
                                                    __m512i lane, Candidates& c)
    __attribute__((target("avx512f,avx512bw")));
inline void take_step_avx512(const std::uint32_t* vb, std::size_t i, __m512i abs_mask,
                             __m512i below, __m512i lane, Candidates& c) {
  c.ensure(c.count + 64);
  std::uint32_t* ci = c.idx.data();
  std::uint32_t* cb = c.bits.data();
  std::size_t count = c.count;
  for (int q = 0; q < 4; ++q) {
    const std::size_t at = i + 16 * static_cast<std::size_t>(q);
    const __m512i x = _mm512_loadu_si512(vb + at);
    const __mmask16 m = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, abs_mask), below);
    const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(at)), lane);
    _mm512_storeu_si512(ci + count, _mm512_maskz_compress_epi32(m, index));
    _mm512_storeu_si512(cb + count, _mm512_maskz_compress_epi32(m, x));
    count += static_cast<std::size_t>(__builtin_popcount(m));
  }
  c.count = count;
}

constexpr int kStreams = 8;  // read streams of the AVX-512 and AVX2 scans

// Joins the streams' lists in order into c, then adds the tail [tail, n) one value at a time.
void join_streams(Stream* q, const std::uint32_t* vb, std::size_t tail, std::size_t n,
                  std::uint32_t threshold, Candidates& c) {
  std::size_t total = 0;
  for (int s = 0; s < kStreams; ++s) total += q[s].c.count;
  c.ensure(total + 64);
  c.count = 0;
  for (int s = 0; s < kStreams; ++s) {
    std::memcpy(c.idx.data() + c.count, q[s].c.idx.data(), q[s].c.count * sizeof(std::uint32_t));
    std::memcpy(c.bits.data() + c.count, q[s].c.bits.data(), q[s].c.count * sizeof(std::uint32_t));
    c.count += q[s].c.count;
  }
  for (std::size_t i = tail; i < n; ++i) {
    if (magnitude_key(vb[i]) >= threshold) {
      c.idx[c.count] = static_cast<std::uint32_t>(i);
      c.bits[c.count] = vb[i];
      ++c.count;
    }
  }
}
__attribute__((target("avx512f,avx512bw"))) void collect_at_least_avx512(
    const float* v, std::size_t n, std::uint32_t threshold, Candidates& c) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i below = _mm512_set1_epi32(static_cast<int>(threshold - 1));  // key > below
  const auto* vb = reinterpret_cast<const std::uint32_t*>(v);
  thread_local Stream q[kStreams];
  const std::size_t steps = n / 64;  // whole 64-value steps; the rest is the tail
  for (int s = 0; s < kStreams; ++s) {
    q[s].c.count = 0;
    q[s].begin = steps * s / kStreams * 64;
    q[s].end = steps * (s + 1) / kStreams * 64;
  }
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const std::size_t shortest = (steps / kStreams) * 64;  // every stream has at least this many
  for (std::size_t off = 0; off < shortest; off += 64)
    for (int s = 0; s < kStreams; ++s)
      take_step_avx512(vb, q[s].begin + off, abs_mask, below, lane, q[s].c);
  for (int s = 0; s < kStreams; ++s)  // the longer streams' last step
    for (std::size_t i = q[s].begin + shortest; i < q[s].end; i += 64)
      take_step_avx512(vb, i, abs_mask, below, lane, q[s].c);
  join_streams(q, vb, steps * 64, n, threshold, c);
}

// The AVX2 twin: 8 keys per compare, the same kStreams streams. AVX2 has no vpcompressd; a
// 256-entry table gives, for each 8-bit match mask, the lanes of the matches packed to the front
// (one byte per lane), and vpermd packs index and value by it.
constexpr std::array<std::uint64_t, 256> kPackLanes = [] {
  std::array<std::uint64_t, 256> t{};
  for (unsigned m = 0; m < 256; ++m) {
    int out = 0;
    for (unsigned l = 0; l < 8; ++l)
      if (m & (1u << l)) t[m] |= std::uint64_t{l} << (8 * out++);
  }
  return t;
}();

[[gnu::always_inline]] inline void take_step_avx2(const std::uint32_t* vb, std::size_t i,
                                                  __m256i abs_mask, __m256i below, __m256i lane,
                                                  Candidates& c)
    __attribute__((target("avx2")));
inline void take_step_avx2(const std::uint32_t* vb, std::size_t i, __m256i abs_mask,
                           __m256i below, __m256i lane, Candidates& c) {
  c.ensure(c.count + 64);
  std::uint32_t* ci = c.idx.data();
  std::uint32_t* cb = c.bits.data();
  std::size_t count = c.count;
  for (int q = 0; q < 8; ++q) {
    const std::size_t at = i + 8 * static_cast<std::size_t>(q);
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vb + at));
    // Keys and `below` are < 2^31, so the signed compare is the unsigned one.
    const __m256i gt = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), below);
    const auto m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(gt)));
    const __m256i perm = _mm256_cvtepu8_epi32(
        _mm_cvtsi64_si128(static_cast<long long>(kPackLanes[m])));
    const __m256i index = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(at)), lane);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ci + count),
                        _mm256_permutevar8x32_epi32(index, perm));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(cb + count),
                        _mm256_permutevar8x32_epi32(x, perm));
    count += static_cast<std::size_t>(__builtin_popcount(m));
  }
  c.count = count;
}

__attribute__((target("avx2"))) void collect_at_least_avx2(const float* v, std::size_t n,
                                                           std::uint32_t threshold,
                                                           Candidates& c) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i below = _mm256_set1_epi32(static_cast<int>(threshold - 1));  // key > below
  const auto* vb = reinterpret_cast<const std::uint32_t*>(v);
  thread_local Stream q[kStreams];
  const std::size_t steps = n / 64;
  for (int s = 0; s < kStreams; ++s) {
    q[s].c.count = 0;
    q[s].begin = steps * s / kStreams * 64;
    q[s].end = steps * (s + 1) / kStreams * 64;
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const std::size_t shortest = (steps / kStreams) * 64;
  for (std::size_t off = 0; off < shortest; off += 64)
    for (int s = 0; s < kStreams; ++s)
      take_step_avx2(vb, q[s].begin + off, abs_mask, below, lane, q[s].c);
  for (int s = 0; s < kStreams; ++s)
    for (std::size_t i = q[s].begin + shortest; i < q[s].end; i += 64)
      take_step_avx2(vb, i, abs_mask, below, lane, q[s].c);
  join_streams(q, vb, steps * 64, n, threshold, c);
}

// Appends the values of the set bits of a 64-value step's mask to c.
inline void take_mask(std::uint64_t mask, std::size_t i, const std::uint32_t* vb, Candidates& c) {
  c.ensure(c.count + 64);
  std::uint32_t* ci = c.idx.data() + c.count;
  std::uint32_t* cb = c.bits.data() + c.count;
  std::size_t got = 0;
  for (; mask != 0; mask &= mask - 1) {
    const std::size_t j = i + static_cast<std::size_t>(std::countr_zero(mask));
    ci[got] = static_cast<std::uint32_t>(j);
    cb[got] = vb[j];
    ++got;
  }
  c.count += got;
}

void collect_at_least_sse2(const float* v, std::size_t n, std::uint32_t threshold, Candidates& c) {
  const __m128i abs_mask = _mm_set1_epi32(0x7FFFFFFF);
  const __m128i below = _mm_set1_epi32(static_cast<int>(threshold - 1));  // key > below
  const auto* vb = reinterpret_cast<const std::uint32_t*>(v);
  c.count = 0;
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    std::uint64_t mask = 0;
    for (int q = 0; q < 4; ++q) {
      const auto* p = reinterpret_cast<const __m128i*>(v + i + 16 * q);
      const __m128i k0 = _mm_and_si128(_mm_loadu_si128(p), abs_mask);
      const __m128i k1 = _mm_and_si128(_mm_loadu_si128(p + 1), abs_mask);
      const __m128i k2 = _mm_and_si128(_mm_loadu_si128(p + 2), abs_mask);
      const __m128i k3 = _mm_and_si128(_mm_loadu_si128(p + 3), abs_mask);
      const __m128i m01 = _mm_packs_epi32(_mm_cmpgt_epi32(k0, below), _mm_cmpgt_epi32(k1, below));
      const __m128i m23 = _mm_packs_epi32(_mm_cmpgt_epi32(k2, below), _mm_cmpgt_epi32(k3, below));
      mask |= static_cast<std::uint64_t>(
                  static_cast<unsigned>(_mm_movemask_epi8(_mm_packs_epi16(m01, m23))))
              << (16 * q);
    }
    if (mask != 0) take_mask(mask, i, vb, c);
  }
  c.ensure(c.count + 64);
  for (; i < n; ++i) {
    if (magnitude_key(vb[i]) >= threshold) {
      c.idx[c.count] = static_cast<std::uint32_t>(i);
      c.bits[c.count] = vb[i];
      ++c.count;
    }
  }
}

void collect_at_least(const float* v, std::size_t n, std::uint32_t threshold, Candidates& c) {
  const Isa isa = active_isa();  // Note [One ISA decision]
  if (isa == Isa::kAvx512)
    collect_at_least_avx512(v, n, threshold, c);
  else if (isa == Isa::kAvx2)
    collect_at_least_avx2(v, n, threshold, c);
  else
    collect_at_least_sse2(v, n, threshold, c);
}

void collect_all(const float* v, std::size_t n, Candidates& c) {
  c.ensure(n);
  std::memcpy(c.bits.data(), v, n * sizeof(float));
  for (std::size_t i = 0; i < n; ++i) c.idx[i] = static_cast<std::uint32_t>(i);
  c.count = n;
}

// The k-th largest magnitude key among the candidates (1 <= k <= count): a 4096-bin histogram
// of (key - min) >> shift finds the bin that holds it, an exact selection within that bin the key.
std::uint32_t kth_largest_key(const Candidates& c, std::size_t k, std::vector<std::uint32_t>& bin) {
  const std::uint32_t* b = c.bits.data();
  std::uint32_t lo = 0xFFFFFFFFu, hi = 0;
  for (std::size_t i = 0; i < c.count; ++i) {
    const std::uint32_t key = magnitude_key(b[i]);
    lo = std::min(lo, key);
    hi = std::max(hi, key);
  }
  const int shift = std::max(0, static_cast<int>(std::bit_width(hi - lo)) - 12);
  std::uint32_t hist[4096] = {};
  for (std::size_t i = 0; i < c.count; ++i) ++hist[(magnitude_key(b[i]) - lo) >> shift];
  std::size_t above = 0;
  std::uint32_t top = (hi - lo) >> shift;
  while (above + hist[top] < k) above += hist[top--];
  bin.clear();
  for (std::size_t i = 0; i < c.count; ++i) {
    const std::uint32_t key = magnitude_key(b[i]);
    if (((key - lo) >> shift) == top) bin.push_back(key);
  }
  const std::size_t r = k - above - 1;  // rank within the bin, 0 = largest
  std::nth_element(bin.begin(), bin.begin() + static_cast<std::ptrdiff_t>(r), bin.end(),
                   std::greater<>());
  return bin[r];
}

}  // namespace

void topk_select(std::span<const float> v, std::int64_t k_signed, std::vector<std::uint32_t>& idx,
                 std::vector<float>& val) {
  const std::size_t n = v.size();
  const auto k =
      static_cast<std::size_t>(std::clamp<std::int64_t>(k_signed, 0, static_cast<std::int64_t>(n)));
  idx.resize(k);
  val.resize(k);
  if (k == 0) return;
  if (k == n) {
    for (std::size_t i = 0; i < n; ++i) idx[i] = static_cast<std::uint32_t>(i);
    std::memcpy(val.data(), v.data(), n * sizeof(float));
    return;
  }
  thread_local Candidates cand;
  thread_local std::vector<std::uint32_t> scratch;
  cand.count = 0;
  if (n > 4 * kSample) {
    // Threshold: the r-th largest sampled magnitude, r a few standard deviations above the
    // expected sample rank of the k-th largest value.
    // kSample values in kSampleRuns runs of consecutive values spread evenly over v: whole
    // cache lines, so the sample costs a few hundred line loads, not kSample.
    scratch.resize(kSample);
    const auto* vb = reinterpret_cast<const std::uint32_t*>(v.data());
    constexpr std::size_t kRun = kSample / kSampleRuns;
    for (std::size_t r = 0; r < kSampleRuns; ++r) {
      const std::uint32_t* p = vb + r * (n - kRun) / (kSampleRuns - 1);
      for (std::size_t j = 0; j < kRun; ++j) scratch[r * kRun + j] = magnitude_key(p[j]);
    }
    const double expect =
        static_cast<double>(kSample) * static_cast<double>(k) / static_cast<double>(n);
    auto r = static_cast<std::size_t>(std::ceil(expect + 3.0 * std::sqrt(expect) + 8.0));
    for (; r < kSample; r *= 4) {
      std::nth_element(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(r - 1),
                       scratch.end(), std::greater<>());
      const std::uint32_t threshold = scratch[r - 1];
      if (threshold == 0) break;
      collect_at_least(v.data(), n, threshold, cand);
      if (cand.count >= k) break;
      cand.count = 0;  // unlucky sample: lower the threshold
    }
  }
  if (cand.count < k) collect_all(v.data(), n, cand);
  const std::uint32_t t = kth_largest_key(cand, k, scratch);
  // Keep keys > t, and the first (k - #greater) keys == t: branch-free, in index order.
  const std::uint32_t* cb = cand.bits.data();
  const std::uint32_t* ci = cand.idx.data();
  std::size_t greater = 0;
  for (std::size_t c = 0; c < cand.count; ++c) greater += magnitude_key(cb[c]) > t;
  std::size_t ties = k - greater, out = 0;
  auto* vals = reinterpret_cast<std::uint32_t*>(val.data());
  for (std::size_t c = 0; c < cand.count && out < k; ++c) {
    const std::uint32_t key = magnitude_key(cb[c]);
    const bool eq = key == t;
    const bool take = key > t || (eq && ties > 0);
    idx[out] = ci[c];
    vals[out] = cb[c];
    out += take;
    ties -= eq && take;
  }
}

void topk_indices(std::span<const float> v, std::int64_t k, std::vector<std::uint32_t>& out) {
  std::vector<float> val;
  topk_select(v, k, out, val);
}

namespace {

thread_local std::vector<std::uint32_t> t_idx;
thread_local std::vector<float> t_val;
thread_local std::vector<std::uint64_t> t_words;

}  // namespace

void TopKCompressor::encode_layer(std::span<const float> v, const LayerShape&,
                                  const MessageContext&, std::span<float>, Rng&,
                                  BitWriter& out) const {
  const std::size_t n = v.size();
  require_index_range(n, "topk");
  const std::int64_t k = sparse_k(ratio_, k_, static_cast<std::int64_t>(n));
  topk_select(v, k, t_idx, t_val);
  const int ib = plain_indices_ ? 32 : index_bits(n);
  const std::uint64_t index_bits_total =
      static_cast<std::uint64_t>(k) * static_cast<std::uint64_t>(ib);
  out.reserve(32 * static_cast<std::uint64_t>(k) + index_bits_total);
  out.put_bits(t_val.data(), 32 * static_cast<std::uint64_t>(k));
  if (ib == 0) return;
  t_words.resize(index_bits_total / 64 + 1);
  WordPacker pk(t_words.data());
  for (std::uint32_t j : t_idx) pk.put(j, ib);
  pk.finish();
  out.put_bits(t_words.data(), pk.bits());
}

void TopKCompressor::decode_layer(BitReader& in, const LayerShape&, const MessageContext&,
                                  std::span<float> out) const {
  const std::size_t n = out.size();
  require_index_range(n, "topk");
  const auto k = static_cast<std::size_t>(sparse_k(ratio_, k_, static_cast<std::int64_t>(n)));
  t_val.resize(k);
  t_idx.resize(k);
  in.get_bits(t_val.data(), 32 * static_cast<std::uint64_t>(k));
  const int ib = plain_indices_ ? 32 : index_bits(n);
  const std::uint64_t total = static_cast<std::uint64_t>(k) * static_cast<std::uint64_t>(ib);
  t_words.assign(total / 64 + 2, 0);
  in.get_bits(t_words.data(), total);
  const std::uint64_t* w = t_words.data();
  const std::uint64_t mask = ib == 0 ? 0 : (~std::uint64_t{0} >> (64 - ib));
  bool ok = true;
  for (std::size_t i = 0; i < k; ++i) {
    const std::uint64_t pos = i * static_cast<std::uint64_t>(ib);
    const std::uint64_t off = pos % 64;
    std::uint64_t x = w[pos / 64] >> off;
    if (off + static_cast<std::uint64_t>(ib) > 64) x |= w[pos / 64 + 1] << (64 - off);
    t_idx[i] = static_cast<std::uint32_t>(x & mask);
    ok &= t_idx[i] < n && (i == 0 || t_idx[i] > t_idx[i - 1]);
  }
  if (!ok) throw std::runtime_error("wire format: top-k indices out of range or not ascending");
  write_sparse<std::uint32_t>(t_idx, t_val.data(), out);
}

CompressorRegistration topk_registration() {
  auto options = sparsity_fields();
  options.push_back(field<CompressorOptions>(
      opt_enum("index_bits", "packed", {"packed", "plain"},
               "packed: ceil(log2 d_layer) bits per index; plain: 32"),
      [](CompressorOptions& o, const Config& cfg, const std::string& path) {
        o.plain_indices = cfg.get_string(path) == "plain";
      }));
  return {"topk", "the k largest |v| per layer (ties: lower index), values + packed indices",
          std::move(options), [](const CompressorOptions& o) -> std::unique_ptr<Compressor> {
            check_sparsity(o);
            return std::make_unique<TopKCompressor>(o.ratio, o.k, o.plain_indices);
          }};
}

}  // namespace cohort::compress
