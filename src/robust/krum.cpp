#include "robust/krum.h"

#include <fmt/format.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/errors.h"
#include "robust/chunk_tree.h"

namespace cohort::robust {

namespace {

constexpr int kLanes = 16;
constexpr int kTile = 4;
constexpr int kTileDoubles = kTile * kTile * kLanes;  // double lane accumulators of one tile

// One 4 x 4 tile of the block's Gram product over len (multiple of 16) coordinates, rows i0..i0+3
// against j0..j0+3 of the scratch s (row stride `stride`); the float lane sums are added into
// dacc[(p * 4 + q) * 16 + lane] (Note [Gram distances]).
[[gnu::always_inline]] inline void gram_tile_body(const float* s, std::int64_t stride, int i0,
                                                  int j0, std::int64_t len, double* dacc) {
  float acc[kTile][kTile][kLanes] = {};
  for (std::int64_t k = 0; k < len; k += kLanes) {
    for (int p = 0; p < kTile; ++p) {
      const float* a = s + (i0 + p) * stride + k;
      for (int q = 0; q < kTile; ++q) {
        const float* b = s + (j0 + q) * stride + k;
        for (int l = 0; l < kLanes; ++l) acc[p][q][l] = std::fma(a[l], b[l], acc[p][q][l]);
      }
    }
  }
  for (int p = 0; p < kTile; ++p)
    for (int q = 0; q < kTile; ++q)
      for (int l = 0; l < kLanes; ++l)
        dacc[(p * kTile + q) * kLanes + l] += static_cast<double>(acc[p][q][l]);
}

__attribute__((target("avx2,fma"))) void gram_tile_avx2(const float* s, std::int64_t stride, int i0,
                                                        int j0, std::int64_t len, double* dacc) {
  gram_tile_body(s, stride, i0, j0, len, dacc);
}
void gram_tile_generic(const float* s, std::int64_t stride, int i0, int j0, std::int64_t len,
                       double* dacc) {
  gram_tile_body(s, stride, i0, j0, len, dacc);
}

__attribute__((target("avx512f"))) void gram_tile_avx512(const float* s, std::int64_t stride,
                                                         int i0, int j0, std::int64_t len,
                                                         double* dacc) {
  __m512 acc[kTile][kTile];
  for (int p = 0; p < kTile; ++p)
    for (int q = 0; q < kTile; ++q) acc[p][q] = _mm512_setzero_ps();
  const float* a0 = s + i0 * stride;
  const float* b0 = s + j0 * stride;
  for (std::int64_t k = 0; k < len; k += kLanes) {
    __m512 a[kTile], b[kTile];
    for (int p = 0; p < kTile; ++p) a[p] = _mm512_load_ps(a0 + p * stride + k);
    for (int q = 0; q < kTile; ++q) b[q] = _mm512_load_ps(b0 + q * stride + k);
    for (int p = 0; p < kTile; ++p)
      for (int q = 0; q < kTile; ++q) acc[p][q] = _mm512_fmadd_ps(a[p], b[q], acc[p][q]);
  }
  for (int p = 0; p < kTile; ++p)
    for (int q = 0; q < kTile; ++q) {
      double* dst = dacc + (p * kTile + q) * kLanes;
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc[p][q]));
      const __m512d hi =
          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p][q]), 1)));
      _mm512_storeu_pd(dst, _mm512_add_pd(_mm512_loadu_pd(dst), lo));
      _mm512_storeu_pd(dst + 8, _mm512_add_pd(_mm512_loadu_pd(dst + 8), hi));
    }
}

using TileFn = void (*)(const float*, std::int64_t, int, int, std::int64_t, double*);

TileFn pick_tile() {
  switch (detail::isa_level()) {
    case 2:
      return gram_tile_avx512;
    case 1:
      return gram_tile_avx2;
    default:
      return gram_tile_generic;
  }
}

// Copies one block (len coordinates from k0) into the scratch, centred on the mean of the first
// center_rows rows; row `rows.size()` is the mean when with_mean; padding rows and lanes are 0.
[[gnu::always_inline]] inline void load_block_body(const float* const* rows, int m, int center_rows,
                                                   bool with_mean, std::int64_t k0,
                                                   std::int64_t len, std::int64_t len16,
                                                   int rows_padded, float* s, float* mean) {
  for (std::int64_t k = 0; k < len16; ++k) mean[k] = 0.0f;
  for (int r = 0; r < center_rows; ++r) {
    const float* x = rows[r] + k0;
    for (std::int64_t k = 0; k < len; ++k) mean[k] += x[k];
  }
  const float c = static_cast<float>(center_rows);
  for (std::int64_t k = 0; k < len; ++k) mean[k] /= c;
  for (int r = 0; r < m; ++r) {
    const float* x = rows[r] + k0;
    float* dst = s + r * kGramBlock;
    for (std::int64_t k = 0; k < len; ++k) dst[k] = x[k] - mean[k];
    for (std::int64_t k = len; k < len16; ++k) dst[k] = 0.0f;
  }
  int r = m;
  if (with_mean) {
    float* dst = s + (r++) * kGramBlock;
    for (std::int64_t k = 0; k < len16; ++k) dst[k] = mean[k];
  }
  for (; r < rows_padded; ++r)
    for (std::int64_t k = 0; k < len16; ++k) s[r * kGramBlock + k] = 0.0f;
}

#define COHORT_LOAD_BLOCK_PARAMS                                                     \
  const float *const *rows, int m, int center_rows, bool with_mean, std::int64_t k0, \
      std::int64_t len, std::int64_t len16, int rows_padded, float *s, float *mean
#define COHORT_LOAD_BLOCK_ARGS rows, m, center_rows, with_mean, k0, len, len16, rows_padded, s, mean
__attribute__((target("avx512f"))) void load_block_avx512(COHORT_LOAD_BLOCK_PARAMS) {
  load_block_body(COHORT_LOAD_BLOCK_ARGS);
}
__attribute__((target("avx2"))) void load_block_avx2(COHORT_LOAD_BLOCK_PARAMS) {
  load_block_body(COHORT_LOAD_BLOCK_ARGS);
}
void load_block_generic(COHORT_LOAD_BLOCK_PARAMS) { load_block_body(COHORT_LOAD_BLOCK_ARGS); }
#undef COHORT_LOAD_BLOCK_PARAMS
#undef COHORT_LOAD_BLOCK_ARGS

void load_block(std::span<const float* const> rows, int center_rows, bool with_mean,
                std::int64_t k0, std::int64_t len, std::int64_t len16, int rows_padded, float* s,
                float* mean) {
  const int m = static_cast<int>(rows.size());
  switch (detail::isa_level()) {
    case 2:
      return load_block_avx512(rows.data(), m, center_rows, with_mean, k0, len, len16, rows_padded,
                               s, mean);
    case 1:
      return load_block_avx2(rows.data(), m, center_rows, with_mean, k0, len, len16, rows_padded, s,
                             mean);
    default:
      return load_block_generic(rows.data(), m, center_rows, with_mean, k0, len, len16, rows_padded,
                                s, mean);
  }
}

}  // namespace

std::vector<double> centered_gram(std::span<const float* const> rows, int center_rows,
                                  bool with_mean, std::int64_t d, const Shard& shard) {
  const int R = static_cast<int>(rows.size()) + (with_mean ? 1 : 0);
  const int tiles = (R + kTile - 1) / kTile;
  const int rows_padded = tiles * kTile;
  const std::int64_t d_total = shard.d_total > 0 ? shard.d_total : d;
  if (shard.offset % kSumChunk != 0 || (shard.offset + d != d_total && d % kSumChunk != 0))
    throw std::logic_error(fmt::format("centered_gram: block [{}, {}) of {} is not chunk-aligned",
                                       shard.offset, shard.offset + d, d_total));
  ChunkTree tree(shard.offset / kSumChunk, (d_total + kSumChunk - 1) / kSumChunk,
                 static_cast<std::size_t>(R) * (R + 1) / 2);
  detail::Scratch scratch, mean_scratch;
  float* s = scratch.reserve(rows_padded * kGramBlock);
  float* mean = mean_scratch.reserve(kGramBlock);
  std::vector<double> dacc(static_cast<std::size_t>(tiles) * tiles * kTileDoubles, 0.0);
  std::vector<double> leaf(static_cast<std::size_t>(R) * (R + 1) / 2);
  // Entry (i, j), i <= j, of the upper triangle packed row by row.
  const auto packed = [R](int i, int j) {
    return static_cast<std::size_t>(i) * R - static_cast<std::size_t>(i) * (i - 1) / 2 +
           static_cast<std::size_t>(j - i);
  };
  const TileFn tile = pick_tile();
  // The tiles are compute-bound and the block loads memory-bound: while the tiles of one block
  // run, the next block's rows are prefetched into L2, spread evenly over the tile calls.
  const int m = static_cast<int>(rows.size());
  const int tile_calls = tiles * (tiles + 1) / 2;
  for (std::int64_t c0 = 0; c0 < d; c0 += kSumChunk) {  // one chunk (Note [Chunked sums])
    const std::int64_t c1 = std::min(d, c0 + kSumChunk);
    for (int I = 0; I < tiles; ++I)
      for (int J = I; J < tiles; ++J)
        std::fill_n(dacc.data() + (static_cast<std::size_t>(I) * tiles + J) * kTileDoubles,
                    kTileDoubles, 0.0);
    for (std::int64_t k0 = c0; k0 < c1; k0 += kGramBlock) {
      const std::int64_t len = std::min(kGramBlock, c1 - k0);
      const std::int64_t len16 = (len + kLanes - 1) / kLanes * kLanes;
      load_block(rows, center_rows, with_mean, k0, len, len16, rows_padded, s, mean);
      const std::int64_t next = k0 + kGramBlock;
      const std::int64_t next_len = std::max<std::int64_t>(0, std::min(kGramBlock, d - next));
      const std::int64_t lines_per_row = (next_len * 4 + 63) / 64;
      const std::int64_t lines = lines_per_row * m;
      std::int64_t issued = 0, line = 0;  // line `line` of row `row` is the next to prefetch
      int call = 0, row = 0;
      for (int I = 0; I < tiles; ++I)
        for (int J = I; J < tiles; ++J) {
          const std::int64_t until = lines * (++call) / tile_calls;
          for (; issued < until; ++issued) {
            _mm_prefetch(reinterpret_cast<const char*>(rows[row] + next) + 64 * line,
                         _MM_HINT_T1);
            if (++line == lines_per_row) {
              line = 0;
              ++row;
            }
          }
          tile(s, kGramBlock, I * kTile, J * kTile, len16,
               dacc.data() + (static_cast<std::size_t>(I) * tiles + J) * kTileDoubles);
        }
    }
    // The chunk's partials: the 16 double lanes of each entry summed in lane order, packed as
    // the upper triangle (i <= j) row by row.
    for (int I = 0; I < tiles; ++I)
      for (int J = I; J < tiles; ++J) {
        const double* t = dacc.data() + (static_cast<std::size_t>(I) * tiles + J) * kTileDoubles;
        for (int p = 0; p < kTile; ++p)
          for (int q = 0; q < kTile; ++q) {
            const int i = I * kTile + p, j = J * kTile + q;
            if (i >= R || j >= R || j < i) continue;
            double sum = 0;
            for (int l = 0; l < kLanes; ++l) sum += t[(p * kTile + q) * kLanes + l];
            leaf[packed(i, j)] = sum;
          }
      }
    tree.push(leaf.data());
  }
  const std::vector<double> upper = tree.total(shard.gather);
  std::vector<double> g(static_cast<std::size_t>(R) * R, 0.0);
  for (int i = 0; i < R; ++i)
    for (int j = i; j < R; ++j) {
      const double v =
          upper[packed(i, j)];
      g[static_cast<std::size_t>(i) * R + j] = v;
      g[static_cast<std::size_t>(j) * R + i] = v;
    }
  return g;
}

std::vector<double> gram_distances(const std::vector<double>& gram, int R, int n) {
  std::vector<double> dist(static_cast<std::size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      const double v = gram[static_cast<std::size_t>(i) * R + i] +
                       gram[static_cast<std::size_t>(j) * R + j] -
                       2.0 * gram[static_cast<std::size_t>(i) * R + j];
      dist[static_cast<std::size_t>(i) * n + j] = std::max(0.0, v);
    }
  return dist;
}

std::vector<double> krum_scores(const std::vector<double>& dist, int n, std::span<const int> subset,
                                int f) {
  const int r = static_cast<int>(subset.size());
  const int k = std::clamp(r - f - 2, 0, std::max(0, r - 1));
  std::vector<double> scores(subset.size()), others;
  for (int a = 0; a < r; ++a) {
    others.clear();
    for (int b = 0; b < r; ++b)
      if (b != a) others.push_back(dist[static_cast<std::size_t>(subset[a]) * n + subset[b]]);
    std::partial_sort(others.begin(), others.begin() + k, others.end());
    double s = 0;
    for (int t = 0; t < k; ++t) s += others[t];
    scores[a] = s;
  }
  return scores;
}

void check_krum_count(const std::string& rule, int n, int f, int factor) {
  const int need = factor * f + 3;
  if (n >= need) return;
  const int f_max = (n - 3) / factor;
  std::string fix = n >= 3 ? fmt::format("with {} inputs f <= {} works", n, f_max)
                           : fmt::format("it needs at least 3 inputs even with f = 0");
  throw UsageError(fmt::format("{} with f={} needs n >= {}f+3 = {} inputs, got {}; {}", rule, f,
                               factor, need, n, fix));
}

void Krum::check_inputs(int n) const {
  check_krum_count(name(), n, f_, 2);
  if (multi_ && m_ > n)
    throw UsageError(fmt::format("multikrum with m={} needs at least m inputs, got {}", m_, n));
}

void Krum::aggregate(const Messages& msg, const Context& ctx, float* out, Report& report) {
  const int n = msg.n;
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = msg.row(i);
  const auto gram = centered_gram(rows, n, /*with_mean=*/false, msg.d, ctx.shard);
  const auto dist = gram_distances(gram, n, n);
  std::vector<int> all(n);
  std::iota(all.begin(), all.end(), 0);
  report.scores = krum_scores(dist, n, all, f_);
  std::vector<int> order = all;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return report.scores[a] < report.scores[b]; });
  report.selected.clear();
  if (!multi_) {
    std::memcpy(out, msg.row(order[0]), sizeof(float) * static_cast<std::size_t>(msg.d));
    report.selected.push_back(msg.client(order[0]));
    return;
  }
  const int m = m_ == 0 ? n - f_ : m_;
  std::vector<int> chosen(order.begin(), order.begin() + m);
  std::sort(chosen.begin(), chosen.end());
  std::vector<const float*> sel;
  for (int i : chosen) {
    sel.push_back(msg.row(i));
    report.selected.push_back(msg.client(i));
  }
  combine_rows(sel, nullptr, m, msg.d, out);
}

}  // namespace cohort::robust
