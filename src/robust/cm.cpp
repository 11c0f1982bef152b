#include "robust/cm.h"

#include <fmt/format.h>

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>
#include <cstring>

#include "core/errors.h"

namespace cohort::robust {

namespace {

// Batcher's odd-even merge sort of n values, padded to a power of two with +inf: the
// comparators (slot pairs: lo gets the min) in order, and after them the slot of each rank.
// constexpr, so the register networks below are built from the same code at compile time.
struct Batcher {
  std::vector<std::pair<int, int>> cmp;
  std::vector<int> end, size;  // per comparator: the merge it belongs to, [end - size, end)
  std::vector<int> slot;  // position -> slot (the first n positions are the ranks)
};
constexpr Batcher batcher(int n) {
  Batcher b;
  int size = 1;
  while (size < n) size <<= 1;
  b.slot.assign(static_cast<std::size_t>(size), -1);  // -1: a padding +inf
  for (int p = 0; p < n; ++p) b.slot[static_cast<std::size_t>(p)] = p;
  auto& slot = b.slot;
  for (int p = 1; p < size; p <<= 1)
    for (int k = p; k >= 1; k >>= 1)
      for (int j = k % p; j + k < size; j += 2 * k)
        for (int i = 0; i < std::min(k, size - j - k); ++i) {
          const auto a = static_cast<std::size_t>(i + j), c = static_cast<std::size_t>(i + j + k);
          if ((a / (2 * p)) != (c / (2 * p))) continue;
          if (slot[c] < 0) continue;  // max is +inf: nothing moves
          if (slot[a] < 0) {          // min is the real value: relabel
            std::swap(slot[a], slot[c]);
            continue;
          }
          b.cmp.emplace_back(slot[a], slot[c]);
          b.end.push_back(static_cast<int>(a / (2 * p) + 1) * 2 * p);
          b.size.push_back(2 * p);
        }
  return b;
}

}  // namespace

SortNetwork make_sort_network(int n, int first, int last) {
  SortNetwork net;
  net.n = n;
  const Batcher b = batcher(n);
  const auto& slot = b.slot;
  const auto& cmp = b.cmp;
  net.rank_slot.assign(slot.begin(), slot.begin() + n);
  // Keep only comparators whose outputs can reach ranks [first, last).
  std::vector<char> needed(n, 0);
  for (int r = first; r < last; ++r) needed[net.rank_slot[r]] = 1;
  std::vector<std::pair<int, int>> kept;
  for (auto it = cmp.rbegin(); it != cmp.rend(); ++it)
    if (needed[it->first] || needed[it->second]) {
      needed[it->first] = needed[it->second] = 1;
      kept.push_back(*it);
    }
  std::reverse(kept.begin(), kept.end());
  for (auto [a, b] : kept) {
    net.lo.push_back(static_cast<std::uint16_t>(a));
    net.hi.push_back(static_cast<std::uint16_t>(b));
  }
  return net;
}

namespace {

[[gnu::always_inline]] inline void network_body(float* s, std::int64_t stride,
                                                const std::uint16_t* lo, const std::uint16_t* hi,
                                                std::size_t count, std::int64_t len) {
  for (std::size_t c = 0; c < count; ++c) {
    float* x = s + lo[c] * stride;
    float* y = s + hi[c] * stride;
    for (std::int64_t k = 0; k < len; ++k) {
      const float u = x[k], v = y[k];
      x[k] = v < u ? v : u;
      y[k] = v < u ? u : v;
    }
  }
}

__attribute__((target("avx512f"))) void network_avx512(float* s, std::int64_t stride,
                                                       const std::uint16_t* lo,
                                                       const std::uint16_t* hi, std::size_t count,
                                                       std::int64_t len) {
  network_body(s, stride, lo, hi, count, len);
}
__attribute__((target("avx2"))) void network_avx2(float* s, std::int64_t stride,
                                                  const std::uint16_t* lo, const std::uint16_t* hi,
                                                  std::size_t count, std::int64_t len) {
  network_body(s, stride, lo, hi, count, len);
}
void network_generic(float* s, std::int64_t stride, const std::uint16_t* lo,
                     const std::uint16_t* hi, std::size_t count, std::int64_t len) {
  network_body(s, stride, lo, hi, count, len);
}

// ---- Columns of up to kRegRows rows sort in registers (AVX-512) ---------------------------------
//
// Note [Register sorting networks]
// With n <= kRegRows, a 16-column slice of all n rows fits in the 32 vector registers, so the
// whole network runs there: n loads, two instructions per comparator, n stores, instead of two
// loads and two stores per comparator on the scratch. The network is the one make_sort_network
// builds (Batcher's odd-even merge sort, same relabelling of the padding), generated at compile
// time for each n and unrolled; it is not pruned, which changes no value at the ranks a rule
// reads (pruning removes only comparators that cannot reach them). min/max take their operands
// in the order of network_body's selects, so equal values (+0 and -0) land where they do there:
// the same bits on every path.
constexpr int kRegRows = 28;

// GCC 12 warns about the intrinsics' undefined pass-through operand and the AVX-512 ABI of
// these internal helpers; neither applies.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"

template <int N>
struct RegNet {
  static constexpr int kSize = [] {
    int s = 1;
    while (s < N) s <<= 1;
    return s;
  }();
  int count = 0;
  std::uint8_t lo[kSize * kSize], hi[kSize * kSize];  // more than Batcher's comparator count
};

// The comparators in depth-first order: each merge right after the two sorts it merges (ordered
// by the merge's last position, then its size), instead of Batcher's phase by phase. A merge of
// a block touches only that block's slots, so every slot sees its comparators in the same order
// and the result is the same; but only one block's values are in use at a time, which keeps them
// in registers (AVX2 has 16: at n = 25 phase order keeps ~100 values on the stack per pass).
template <int N>
constexpr RegNet<N> build_reg_net() {
  RegNet<N> net{};
  const Batcher b = batcher(N);
  std::vector<int> order;  // not order(n): clang rejects libstdc++ 12's value-init in constexpr
  order.reserve(b.cmp.size());
  for (std::size_t c = 0; c < b.cmp.size(); ++c) order.push_back(static_cast<int>(c));
  const auto before = [&](int x, int y) {
    const auto ux = static_cast<std::size_t>(x), uy = static_cast<std::size_t>(y);
    return b.end[ux] != b.end[uy] ? b.end[ux] < b.end[uy] : b.size[ux] < b.size[uy];
  };
  for (std::size_t i = 1; i < order.size(); ++i)  // insertion sort: stable and constexpr
    for (std::size_t j = i; j > 0 && before(order[j], order[j - 1]); --j)
      std::swap(order[j], order[j - 1]);
  for (const int c : order) {
    const auto& [lo, hi] = b.cmp[static_cast<std::size_t>(c)];
    net.lo[net.count] = static_cast<std::uint8_t>(lo);
    net.hi[net.count] = static_cast<std::uint8_t>(hi);
    ++net.count;
  }
  return net;
}

template <int N>
inline constexpr RegNet<N> kRegNet = build_reg_net<N>();

template <int N, std::size_t C>
[[gnu::always_inline]] __attribute__((target("avx512f"))) inline void reg_compare(__m512* v) {
  constexpr int a = kRegNet<N>.lo[C], b = kRegNet<N>.hi[C];
  const __m512 x = v[a], y = v[b];
  v[a] = _mm512_min_ps(y, x);  // (y < x) ? y : x
  v[b] = _mm512_max_ps(x, y);  // (x > y) ? x : y, i.e. (y < x) ? x : y
}

template <int N, std::size_t... C>
[[gnu::always_inline]] __attribute__((target("avx512f"))) inline void reg_network(
    [[maybe_unused]] __m512* v, std::index_sequence<C...>) {
  (reg_compare<N, C>(v), ...);
}

template <int N, std::size_t... R>
[[gnu::always_inline]] __attribute__((target("avx512f"))) inline void reg_load(__m512* v, const float* const* rows, std::int64_t at,
                                            __mmask16 mask, std::index_sequence<R...>) {
  ((v[R] = _mm512_maskz_loadu_ps(mask, rows[R] + at)), ...);
}

template <int N, std::size_t... R>
[[gnu::always_inline]] __attribute__((target("avx512f"))) inline void reg_store(const __m512* v, float* s, std::int64_t stride,
                                             std::index_sequence<R...>) {
  ((_mm512_store_ps(s + static_cast<std::int64_t>(R) * stride, v[R])), ...);
}

// Sorts columns [k0, k0 + len) of the N rows into the scratch s (row stride `stride`, columns
// padded with zeros to a multiple of 16).
template <int N>
__attribute__((target("avx512f"))) void sort_block_regs(const float* const* rows, std::int64_t k0,
                                                        std::int64_t len, float* s,
                                                        std::int64_t stride) {
  for (std::int64_t c = 0; c < len; c += 16) {
    const __mmask16 mask =
        len - c >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (len - c)) - 1);
    __m512 v[N];
    reg_load<N>(v, rows, k0 + c, mask, std::make_index_sequence<N>{});
    reg_network<N>(v, std::make_index_sequence<static_cast<std::size_t>(kRegNet<N>.count)>{});
    reg_store<N>(v, s + c, stride, std::make_index_sequence<N>{});
  }
}

// The same network on AVX2, 8 columns at a time. Its 16 registers hold all n rows only up to
// n = 14 or so; beyond that the compiler keeps the rest on the stack, which still costs far less
// than network_body's two loads and two stores per comparator (the unrolled network reuses each
// value in a register across the comparators that follow). Tail columns load as zeros, as on
// AVX-512, and min/max take their operands in the same order, so the bits are the same.
template <int N, std::size_t C>
[[gnu::always_inline]] __attribute__((target("avx2"))) inline void reg_compare_avx2(__m256* v) {
  constexpr int a = kRegNet<N>.lo[C], b = kRegNet<N>.hi[C];
  const __m256 x = v[a], y = v[b];
  v[a] = _mm256_min_ps(y, x);
  v[b] = _mm256_max_ps(x, y);
}

template <int N, std::size_t... C>
[[gnu::always_inline]] __attribute__((target("avx2"))) inline void reg_network_avx2(
    [[maybe_unused]] __m256* v, std::index_sequence<C...>) {
  (reg_compare_avx2<N, C>(v), ...);
}

template <int N, std::size_t... R>
[[gnu::always_inline]] __attribute__((target("avx2"))) inline void reg_load_avx2(
    __m256* v, const float* const* rows, std::int64_t at, std::index_sequence<R...>) {
  ((v[R] = _mm256_loadu_ps(rows[R] + at)), ...);
}

template <int N, std::size_t... R>
[[gnu::always_inline]] __attribute__((target("avx2"))) inline void reg_load_avx2_masked(
    __m256* v, const float* const* rows, std::int64_t at, __m256i mask,
    std::index_sequence<R...>) {
  ((v[R] = _mm256_maskload_ps(rows[R] + at, mask)), ...);
}

template <int N, std::size_t... R>
[[gnu::always_inline]] __attribute__((target("avx2"))) inline void reg_store_avx2(
    const __m256* v, float* s, std::int64_t stride, std::index_sequence<R...>) {
  ((_mm256_store_ps(s + static_cast<std::int64_t>(R) * stride, v[R])), ...);
}

template <int N>
__attribute__((target("avx2"))) void sort_block_regs_avx2(const float* const* rows,
                                                          std::int64_t k0, std::int64_t len,
                                                          float* s, std::int64_t stride) {
  constexpr auto kRows = std::make_index_sequence<N>{};
  constexpr auto kCmps = std::make_index_sequence<static_cast<std::size_t>(kRegNet<N>.count)>{};
  std::int64_t c = 0;
  for (; c + 8 <= len; c += 8) {
    __m256 v[N];
    reg_load_avx2<N>(v, rows, k0 + c, kRows);
    reg_network_avx2<N>(v, kCmps);
    reg_store_avx2<N>(v, s + c, stride, kRows);
  }
  if (c < len) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(len - c)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v[N];
    reg_load_avx2_masked<N>(v, rows, k0 + c, mask, kRows);
    reg_network_avx2<N>(v, kCmps);
    reg_store_avx2<N>(v, s + c, stride, kRows);
  }
}

using SortBlock = void (*)(const float* const*, std::int64_t, std::int64_t, float*, std::int64_t);

template <std::size_t... I>
constexpr std::array<SortBlock, sizeof...(I)> make_sort_blocks(std::index_sequence<I...>) {
  return {sort_block_regs<static_cast<int>(I) + 1>...};
}
constexpr auto kSortBlocks = make_sort_blocks(std::make_index_sequence<kRegRows>{});
template <std::size_t... I>
constexpr std::array<SortBlock, sizeof...(I)> make_sort_blocks_avx2(std::index_sequence<I...>) {
  return {sort_block_regs_avx2<static_cast<int>(I) + 1>...};
}
constexpr auto kSortBlocksAvx2 = make_sort_blocks_avx2(std::make_index_sequence<kRegRows>{});
#pragma GCC diagnostic pop

}  // namespace

void sort_columns(
    std::span<const float* const> rows, std::int64_t d, const SortNetwork& net,
    const std::function<void(std::int64_t, std::int64_t, const float*, std::int64_t)>& reduce) {
  const int n = static_cast<int>(rows.size());
  // A block of n x stride floats stays within ~32 KB (L1) where n allows.
  const std::int64_t stride = std::clamp<std::int64_t>(8192 / std::max(n, 1) / 16 * 16, 16, 512);
  detail::Scratch scratch;
  float* s = scratch.reserve(n * stride);
  const int isa = detail::isa_level();
  if (isa >= 1 && n >= 1 && n <= kRegRows) {  // Note [Register sorting networks]
    const SortBlock sort_block = (isa == 2 ? kSortBlocks : kSortBlocksAvx2)[static_cast<std::size_t>(n - 1)];
    for (std::int64_t k0 = 0; k0 < d; k0 += stride) {
      const std::int64_t len = std::min(stride, d - k0);
      sort_block(rows.data(), k0, len, s, stride);
      reduce(k0, len, s, stride);
    }
    return;
  }
  for (std::int64_t k0 = 0; k0 < d; k0 += stride) {
    const std::int64_t len = std::min(stride, d - k0);
    const std::int64_t len16 = (len + 15) / 16 * 16;
    for (int r = 0; r < n; ++r) {
      std::memcpy(s + r * stride, rows[r] + k0, sizeof(float) * static_cast<std::size_t>(len));
      std::fill(s + r * stride + len, s + r * stride + len16, 0.0f);
    }
    if (isa == 2)
      network_avx512(s, stride, net.lo.data(), net.hi.data(), net.lo.size(), len16);
    else if (isa == 1)
      network_avx2(s, stride, net.lo.data(), net.hi.data(), net.lo.size(), len16);
    else
      network_generic(s, stride, net.lo.data(), net.hi.data(), net.lo.size(), len16);
    reduce(k0, len, s, stride);
  }
}

void CoordinateMedian::check_inputs(int n) const {
  if (n < 1) throw UsageError("cm needs at least 1 input, got 0");
}

void CoordinateMedian::aggregate(const Messages& m, const Context&, float* out, Report& report) {
  const int n = m.n;
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = m.row(i);
  const int hi_rank = n / 2, lo_rank = (n - 1) / 2;  // equal for odd n
  const SortNetwork net = make_sort_network(n, lo_rank, hi_rank + 1);
  const int slo = net.rank_slot[lo_rank], shi = net.rank_slot[hi_rank];
  report.selected.clear();
  sort_columns(
      rows, m.d, net, [&](std::int64_t k0, std::int64_t len, const float* s, std::int64_t stride) {
        const float* a = s + slo * stride;
        const float* b = s + shi * stride;
        float* o = out + k0;
        if (slo == shi) {
          std::memcpy(o, a, sizeof(float) * static_cast<std::size_t>(len));
        } else {
          for (std::int64_t k = 0; k < len; ++k)
            o[k] =
                static_cast<float>(0.5 * (static_cast<double>(a[k]) + static_cast<double>(b[k])));
        }
      });
}

AggregatorRegistration cm_registration() {
  return {"cm",
          "coordinate-wise median (even n: mean of the two middle values)",
          {},
          [](const AggregatorOptions&) { return std::make_unique<CoordinateMedian>(); }};
}

}  // namespace cohort::robust
