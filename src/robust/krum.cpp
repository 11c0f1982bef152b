#include "robust/krum.h"

#include <fmt/format.h>
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

#include "core/errors.h"
#include "robust/chunk_tree.h"

namespace cohort::robust {

namespace {

constexpr int kLanes = 16;
// Up to this many rows the AVX-512 block load reads all rows side by side (load_block_avx512);
// beyond it the rows' pages no longer fit the TLB together and row by row is faster (at n = 100:
// 15 ms against 27 ms per Gram product of d = 1e5 on the benchmark host; the two meet near 56).
constexpr int kStreams = 48;

// One T x T tile of the block's Gram product over len (multiple of 16) coordinates, rows
// i0..i0+T-1 against j0..j0+T-1 of the scratch s (row stride `stride`); the float lane sums are
// added into dacc[(p * T + q) * 16 + lane] (Note [Gram distances]). The tile shape only decides
// which entries are computed together, never the order of an entry's additions.
template <int T>
[[gnu::always_inline]] inline void gram_tile_body(const float* s, std::int64_t stride, int i0,
                                                  int j0, std::int64_t len, double* dacc) {
  float acc[T][T][kLanes] = {};
  for (std::int64_t k = 0; k < len; k += kLanes) {
    for (int p = 0; p < T; ++p) {
      const float* a = s + (i0 + p) * stride + k;
      for (int q = 0; q < T; ++q) {
        const float* b = s + (j0 + q) * stride + k;
        for (int l = 0; l < kLanes; ++l) acc[p][q][l] = std::fma(a[l], b[l], acc[p][q][l]);
      }
    }
  }
  for (int p = 0; p < T; ++p)
    for (int q = 0; q < T; ++q)
      for (int l = 0; l < kLanes; ++l)
        dacc[(p * T + q) * kLanes + l] += static_cast<double>(acc[p][q][l]);
}

template <int T>
void gram_tile_generic(const float* s, std::int64_t stride, int i0, int j0, std::int64_t len,
                       double* dacc) {
  gram_tile_body<T>(s, stride, i0, j0, len, dacc);
}

// A x B accumulators plus the B loaded b vectors and one a vector: 31 of the 32 registers at
// 5 x 5, so each step's 10 loads feed 25 FMAs.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12: the intrinsics' pass-through
template <int A, int B>
__attribute__((target("avx512f"))) void gram_tile_avx512(const float* s, std::int64_t stride,
                                                         int i0, int j0, std::int64_t len,
                                                         double* dacc) {
  __m512 acc[A][B];
  for (int p = 0; p < A; ++p)
    for (int q = 0; q < B; ++q) acc[p][q] = _mm512_setzero_ps();
  const float* a0 = s + i0 * stride;
  const float* b0 = s + j0 * stride;
  for (std::int64_t k = 0; k < len; k += kLanes) {
    __m512 b[B];
    for (int q = 0; q < B; ++q) b[q] = _mm512_load_ps(b0 + q * stride + k);
    for (int p = 0; p < A; ++p) {
      const __m512 a = _mm512_load_ps(a0 + p * stride + k);
      for (int q = 0; q < B; ++q) acc[p][q] = _mm512_fmadd_ps(a, b[q], acc[p][q]);
    }
  }
  for (int p = 0; p < A; ++p)
    for (int q = 0; q < B; ++q) {
      double* dst = dacc + (p * B + q) * kLanes;
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc[p][q]));
      const __m512d hi =
          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p][q]), 1)));
      _mm512_storeu_pd(dst, _mm512_add_pd(_mm512_loadu_pd(dst), lo));
      _mm512_storeu_pd(dst + 8, _mm512_add_pd(_mm512_loadu_pd(dst + 8), hi));
    }
}
#pragma GCC diagnostic pop

// AVX2 has 16 registers of 8 lanes: the 16 lanes of an entry are two independent halves
// (lanes 0-7 and 8-15, each still adding one coordinate in 16 per FMA), so the tile runs each
// half over the whole block in turn. A x B accumulators plus B b vectors and one a vector: 13
// of the 16 registers at 3 x 3, so each step's 6 loads feed 9 FMAs. Each lane sees the same
// FMAs in the same order as on AVX-512, then the same conversion and double addition.
template <int A, int B>
__attribute__((target("avx2,fma"))) void gram_tile_avx2(const float* s, std::int64_t stride,
                                                        int i0, int j0, std::int64_t len,
                                                        double* dacc) {
  const float* a0 = s + i0 * stride;
  const float* b0 = s + j0 * stride;
  for (int h = 0; h < kLanes; h += 8) {
    __m256 acc[A][B];
    for (int p = 0; p < A; ++p)
      for (int q = 0; q < B; ++q) acc[p][q] = _mm256_setzero_ps();
    for (std::int64_t k = h; k < len; k += kLanes) {
      __m256 b[B];
      for (int q = 0; q < B; ++q) b[q] = _mm256_load_ps(b0 + q * stride + k);
      for (int p = 0; p < A; ++p) {
        const __m256 a = _mm256_load_ps(a0 + p * stride + k);
        for (int q = 0; q < B; ++q) acc[p][q] = _mm256_fmadd_ps(a, b[q], acc[p][q]);
      }
    }
    for (int p = 0; p < A; ++p)
      for (int q = 0; q < B; ++q) {
        double* dst = dacc + (p * B + q) * kLanes + h;
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(acc[p][q]));
        const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(acc[p][q], 1));
        _mm256_storeu_pd(dst, _mm256_add_pd(_mm256_loadu_pd(dst), lo));
        _mm256_storeu_pd(dst + 4, _mm256_add_pd(_mm256_loadu_pd(dst + 4), hi));
      }
  }
}

using TileFn = void (*)(const float*, std::int64_t, int, int, std::int64_t, double*);

// The row grouping of the tiles. AVX-512 cuts the R rows into groups of 5 (AVX2: 3; the last may
// be smaller) and runs a g_I x g_J tile for each pair of groups I <= J, so no padding rows are
// multiplied (R = 25: 375 FMAs per coordinate on AVX-512, 349 on AVX2); the generic path pads R
// to a multiple of 4 and runs 4 x 4 tiles (448 at R = 25 or 26).
struct Tiling {
  int group;      // rows per group
  bool pad;       // pad the last group with zero rows
  int rows(int R) const { return pad ? (R + group - 1) / group * group : R; }
};

template <std::size_t... I>
constexpr std::array<TileFn, sizeof...(I)> avx512_tiles(std::index_sequence<I...>) {
  return {&gram_tile_avx512<static_cast<int>(I / 5) + 1, static_cast<int>(I % 5) + 1>...};
}
constexpr auto kAvx512Tiles = avx512_tiles(std::make_index_sequence<25>{});
template <std::size_t... I>
constexpr std::array<TileFn, sizeof...(I)> avx2_tiles(std::index_sequence<I...>) {
  return {&gram_tile_avx2<static_cast<int>(I / 3) + 1, static_cast<int>(I % 3) + 1>...};
}
constexpr auto kAvx2Tiles = avx2_tiles(std::make_index_sequence<9>{});

Tiling pick_tiling() {
  switch (detail::isa_level()) {
    case 2:
      return Tiling{5, false};
    case 1:
      return Tiling{3, false};
    default:
      return Tiling{4, true};
  }
}

// The tile for a groups of a x b rows (a, b <= the tiling's group).
TileFn pick_tile(int a, int b) {
  switch (detail::isa_level()) {
    case 2:
      return kAvx512Tiles[static_cast<std::size_t>((a - 1) * 5 + (b - 1))];
    case 1:
      return kAvx2Tiles[static_cast<std::size_t>((a - 1) * 3 + (b - 1))];
    default:
      return gram_tile_generic<4>;
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
// The same values as load_block_body (the mean of a coordinate adds the rows in row order from
// 0, then divides), computed 16 coordinates at a time across all rows: the rows are read as m
// concurrent streams, which the hardware prefetchers follow at the full read bandwidth, where
// one row at a time restarts them at every page.
__attribute__((target("avx512f"))) void load_block_avx512(COHORT_LOAD_BLOCK_PARAMS) {
  (void)mean;
  const __m512 c = _mm512_set1_ps(static_cast<float>(center_rows));
  const __m512 zero = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < len16; k += kLanes) {
    const __mmask16 live =
        len - k >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << (len - k)) - 1u);
    __m512 mu = zero;
    for (int r = 0; r < center_rows; ++r)
      mu = _mm512_add_ps(mu, _mm512_mask_loadu_ps(zero, live, rows[r] + k0 + k));
    mu = _mm512_div_ps(mu, c);
    for (int r = 0; r < m; ++r)
      _mm512_store_ps(s + r * kGramBlock + k,
                      _mm512_sub_ps(_mm512_mask_loadu_ps(zero, live, rows[r] + k0 + k), mu));
    int r = m;
    if (with_mean) _mm512_store_ps(s + (r++) * kGramBlock + k, mu);
    for (; r < rows_padded; ++r) _mm512_store_ps(s + r * kGramBlock + k, zero);
  }
}
__attribute__((target("avx512f"))) void load_block_rows_avx512(COHORT_LOAD_BLOCK_PARAMS) {
  load_block_body(COHORT_LOAD_BLOCK_ARGS);
}
// load_block_avx512 on AVX2: 8 coordinates at a time across all rows.
__attribute__((target("avx2"))) void load_block_avx2(COHORT_LOAD_BLOCK_PARAMS) {
  (void)mean;
  const __m256 c = _mm256_set1_ps(static_cast<float>(center_rows));
  const __m256 zero = _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (std::int64_t k = 0; k < len16; k += 8) {
    const std::int64_t left = std::min<std::int64_t>(len - k, 8);
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), lane);
    __m256 mu = zero;
    for (int r = 0; r < center_rows; ++r)
      mu = _mm256_add_ps(mu, _mm256_maskload_ps(rows[r] + k0 + k, live));
    mu = _mm256_div_ps(mu, c);
    for (int r = 0; r < m; ++r)
      _mm256_store_ps(s + r * kGramBlock + k,
                      _mm256_sub_ps(_mm256_maskload_ps(rows[r] + k0 + k, live), mu));
    int r = m;
    if (with_mean) _mm256_store_ps(s + (r++) * kGramBlock + k, mu);
    for (; r < rows_padded; ++r) _mm256_store_ps(s + r * kGramBlock + k, zero);
  }
}
__attribute__((target("avx2"))) void load_block_rows_avx2(COHORT_LOAD_BLOCK_PARAMS) {
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
      if (m > kStreams)
        return load_block_rows_avx512(rows.data(), m, center_rows, with_mean, k0, len, len16,
                                      rows_padded, s, mean);
      return load_block_avx512(rows.data(), m, center_rows, with_mean, k0, len, len16, rows_padded,
                               s, mean);
    case 1:
      if (m > kStreams)
        return load_block_rows_avx2(rows.data(), m, center_rows, with_mean, k0, len, len16,
                                    rows_padded, s, mean);
      return load_block_avx2(rows.data(), m, center_rows, with_mean, k0, len, len16, rows_padded, s,
                             mean);
    default:
      return load_block_generic(rows.data(), m, center_rows, with_mean, k0, len, len16, rows_padded,
                                s, mean);
  }
}

// Entry (i, j), i <= j, of the upper triangle of an R x R matrix packed row by row.
std::size_t packed_index(int R, int i, int j) {
  return static_cast<std::size_t>(i) * R - static_cast<std::size_t>(i) * (i - 1) / 2 +
         static_cast<std::size_t>(j - i);
}

// Pushes the partials of every chunk of [0, d) into the tree.
void gram_chunks(std::span<const float* const> rows, int center_rows, bool with_mean,
                 std::int64_t d, int R, ChunkTree& tree) {
  const Tiling tiling = pick_tiling();
  const int G = tiling.group;
  const int rows_padded = tiling.rows(R);
  const int groups = (rows_padded + G - 1) / G;
  const auto group_size = [&](int I) { return std::min(G, rows_padded - I * G); };
  const std::size_t tile_doubles = static_cast<std::size_t>(G) * G * kLanes;
  detail::Scratch scratch, mean_scratch;
  float* s = scratch.reserve(static_cast<std::int64_t>(rows_padded) * kGramBlock);
  float* mean = mean_scratch.reserve(kGramBlock);
  std::vector<double> dacc(static_cast<std::size_t>(groups) * groups * tile_doubles, 0.0);
  std::vector<double> leaf(static_cast<std::size_t>(R) * (R + 1) / 2);
  std::vector<TileFn> tile(static_cast<std::size_t>(groups) * groups);
  for (int I = 0; I < groups; ++I)
    for (int J = I; J < groups; ++J) tile[I * groups + J] = pick_tile(group_size(I), group_size(J));
  for (std::int64_t c0 = 0; c0 < d; c0 += kSumChunk) {  // one chunk (Note [Chunked sums])
    const std::int64_t c1 = std::min(d, c0 + kSumChunk);
    std::fill(dacc.begin(), dacc.end(), 0.0);
    for (std::int64_t k0 = c0; k0 < c1; k0 += kGramBlock) {
      const std::int64_t len = std::min(kGramBlock, c1 - k0);
      const std::int64_t len16 = (len + kLanes - 1) / kLanes * kLanes;
      load_block(rows, center_rows, with_mean, k0, len, len16, rows_padded, s, mean);
      for (int I = 0; I < groups; ++I)
        for (int J = I; J < groups; ++J) {
          const std::size_t t = static_cast<std::size_t>(I) * groups + J;
          tile[t](s, kGramBlock, I * G, J * G, len16, dacc.data() + t * tile_doubles);
        }
    }
    // The chunk's partials: the 16 double lanes of each entry summed in lane order, packed as
    // the upper triangle (i <= j) row by row.
    for (int I = 0; I < groups; ++I)
      for (int J = I; J < groups; ++J) {
        const double* t = dacc.data() + (static_cast<std::size_t>(I) * groups + J) * tile_doubles;
        const int a = group_size(I), b = group_size(J);
        for (int p = 0; p < a; ++p)
          for (int q = 0; q < b; ++q) {
            const int i = I * G + p, j = J * G + q;
            if (i >= R || j >= R || j < i) continue;
            double sum = 0;
            for (int l = 0; l < kLanes; ++l) sum += t[(p * b + q) * kLanes + l];
            leaf[packed_index(R, i, j)] = sum;
          }
      }
    tree.push(leaf.data());
  }
}

}  // namespace

std::vector<double> centered_gram(std::span<const float* const> rows, int center_rows,
                                  bool with_mean, std::int64_t d, const Shard& shard) {
  const int R = static_cast<int>(rows.size()) + (with_mean ? 1 : 0);
  const std::int64_t d_total = shard.d_total > 0 ? shard.d_total : d;
  if (shard.offset % kSumChunk != 0 || (shard.offset + d != d_total && d % kSumChunk != 0))
    throw std::logic_error(fmt::format("centered_gram: block [{}, {}) of {} is not chunk-aligned",
                                       shard.offset, shard.offset + d, d_total));
  ChunkTree tree(shard.offset / kSumChunk, (d_total + kSumChunk - 1) / kSumChunk,
                 static_cast<std::size_t>(R) * (R + 1) / 2);
  gram_chunks(rows, center_rows, with_mean, d, R, tree);
  const std::vector<double> upper = tree.total(shard.gather);
  std::vector<double> g(static_cast<std::size_t>(R) * R, 0.0);
  for (int i = 0; i < R; ++i)
    for (int j = i; j < R; ++j) {
      const double v = upper[packed_index(R, i, j)];
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

Field<AggregatorOptions> f_field() {
  return field(opt_int("f", 1, "assumed number of Byzantine messages"), &AggregatorOptions::f);
}

void check_f(const AggregatorOptions& o) {
  require_option(o.f >= 0, "f", fmt::format("must be >= 0, got {}", o.f));
}

AggregatorRegistration krum_registration() {
  return {"krum",
          "the message with the lowest sum of squared distances to its n-f-2 nearest (n >= 2f+3)",
          {f_field()},
          [](const AggregatorOptions& o) {
            check_f(o);
            return std::make_unique<Krum>(o.f, false);
          }};
}

AggregatorRegistration multikrum_registration() {
  return {"multikrum",
          "mean of the m lowest Krum scores (n >= 2f+3)",
          {f_field(), field(opt_int("m", 0, "messages averaged; 0: n - f"), &AggregatorOptions::m)},
          [](const AggregatorOptions& o) {
            check_f(o);
            require_option(o.m >= 0, "m", fmt::format("must be >= 0 (0: n - f), got {}", o.m));
            return std::make_unique<Krum>(o.f, true, o.m);
          }};
}

}  // namespace cohort::robust
