// krum and multikrum (docs/algorithms.md §3), and the Gram product they share with bulyan and gm.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "robust/aggregator.h"

namespace cohort::robust {

// Note [Gram distances]
// Krum needs all n^2 squared distances; bulyan reuses them; gm expresses every iterate
// as a combination of the inputs and needs the same inner products (Note [Iterates as
// combinations] in gm.h). Computing them as d_ij = G_ii + G_jj - 2 G_ij from the Gram matrix
// G = X X^T halves the work of direct differences, and the product is compute-bound at the rate
// these rules must reach (krum at n = 25: >= 13 GB/s of input, ~80 GFLOP/s), which needs
// 16-wide float FMAs; an SSE2 build of Eigen cannot get there. Two things keep it accurate:
//  - the rows are centred first on their coordinate mean mu (per block of kGramBlock
//    coordinates, so mu costs no extra pass), so the cancellation in G_ii + G_jj - 2 G_ij is
//    relative to the spread of the rows, not to their common offset;
//  - each of 16 lanes accumulates float FMAs over at most kGramBlock / 16 = 64 coordinates and
//    is then added into a double accumulator; the 16 double lanes are summed in lane order.
// The error of G_ij is thus about 64 float ulps of sum_k |x'_ik x'_jk| in the worst case. The
// lane structure and the order are fixed, so the AVX-512, AVX2 and generic paths give the same
// bits (Note [Robust kernels]).
inline constexpr std::int64_t kGramBlock = 1024;

// The Gram matrix (R x R, row-major, R = rows.size() + with_mean) of the rows centred on the
// coordinate mean mu of the first center_rows rows; when with_mean, row R-1 is mu itself.
// Summed chunk by chunk over a fixed tree (Note [Chunked sums]); under the shard plan the rows
// are the block's d values and the call is collective over shard.gather.
std::vector<double> centered_gram(std::span<const float* const> rows, int center_rows,
                                  bool with_mean, std::int64_t d, const Shard& shard = {});

// Squared distances (n x n) from the leading n x n block of a Gram matrix with R columns.
std::vector<double> gram_distances(const std::vector<double>& gram, int R, int n);

// Krum scores of the rows in `subset` (indices into dist, n x n), each the sum of the squared
// distances to its max(0, |subset| - f - 2) nearest others in the subset, summed in ascending
// order. Result in subset order.
std::vector<double> krum_scores(const std::vector<double>& dist, int n, std::span<const int> subset,
                                int f);

// "n >= 2f+3" check shared by krum, multikrum and (with 4f+3) bulyan.
void check_krum_count(const std::string& rule, int n, int f, int factor);

class Krum final : public Aggregator {
 public:
  // multi: multikrum averaging m rows (m == 0: n - f).
  Krum(int f, bool multi, int m = 0) : f_(f), multi_(multi), m_(m) {}
  std::string name() const override { return multi_ ? "multikrum" : "krum"; }
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;

 private:
  int f_;
  bool multi_;
  int m_;
};

// f, the assumed Byzantine count of krum, multikrum and bulyan, and its check.
Field<AggregatorOptions> f_field();
void check_f(const AggregatorOptions& o);
// Their options, schema entries and factories (Note [Registration]).
AggregatorRegistration krum_registration();
AggregatorRegistration multikrum_registration();

}  // namespace cohort::robust
