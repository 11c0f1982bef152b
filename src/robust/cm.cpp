#include "robust/cm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/errors.h"

namespace cohort::robust {

SortNetwork make_sort_network(int n, int first, int last) {
  SortNetwork net;
  net.n = n;
  int size = 1;
  while (size < n) size <<= 1;
  std::vector<int> slot(size, -1);  // position -> slot; -1: a padding +inf
  for (int p = 0; p < n; ++p) slot[p] = p;
  std::vector<std::pair<int, int>> cmp;
  // Batcher's odd-even merge sort on `size` positions.
  for (int p = 1; p < size; p <<= 1)
    for (int k = p; k >= 1; k >>= 1)
      for (int j = k % p; j + k < size; j += 2 * k)
        for (int i = 0; i < std::min(k, size - j - k); ++i) {
          const int a = i + j, b = i + j + k;
          if ((a / (2 * p)) != (b / (2 * p))) continue;
          if (slot[b] < 0) continue;  // max is +inf: nothing moves
          if (slot[a] < 0) {          // min is the real value: relabel
            std::swap(slot[a], slot[b]);
            continue;
          }
          cmp.emplace_back(slot[a], slot[b]);
        }
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

}  // namespace cohort::robust
