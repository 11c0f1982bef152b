// Order-independent vector sums in 64-bit words: the sum behind every mean of client messages.
//
// Note [Deterministic sums]
// A float sum depends on the order of its terms, and the order in which ranks combine partial
// sums depends on the rank count. cohort therefore rounds every term once, on its own, onto an
// integer grid, and adds integers: integer addition is exact, associative and commutative, so
// neither the local order nor MPI's reduction tree nor the rank count can change a bit.
//
// The grid. Coordinates are cut into blocks of kBlock. Block b has a scale exponent E_b, the
// same on every rank. A term v = w x (x a float32 message value, w the client's double weight)
// becomes y = fl(x * w 2^(P-E_b)) = fl(w x) 2^(P-E_b) and the integer q = rint(y) (round to
// nearest even), a function of the term alone. P = 62 - h with 2^(h-1) <= n < 2^h, n the most
// terms a sum takes (the clients per round), so n terms with |q| <= 2^P cannot overflow a
// 64-bit word. While |v| < 2^E_b, q goes straight into the block's word: the fast path, one
// multiply, one conversion to int64 and one add per value, vectorised, with no data-dependent
// branch. Note [Block sum overflow] covers larger terms.
//
// The scales follow the data. After each sum, E_b becomes e_b + G (G = kGrowth bits of room),
// e_b the exponent with max |v| < 2^e_b over the block's terms of that sum (all ranks agree on
// it through a max all-reduce of one small integer per block); a block with no nonzero term
// keeps its scale. The first sum of a run uses E_b = 0 (message values below 1 take the fast
// path). The scales are run state: identical on every rank and changed only by sums.
//
// Accuracy. Each term is off by at most 2^(E_b-P-1). Once the scale has followed the block's
// largest term M_b (2^E_b <= 2^(G+1) M_b), a coordinate's sum of n terms is off by at most
// n 2^(E_b-P-1) <= n 2^(G-P) M_b <= n^2 2^(G-61) M_b = n^2 2^-59 M_b (G = 2, 2^h <= 2n).
// A float64 sum in any order carries the bound (n-1) 2^-53 sum|v| <= n^2 2^-53 M_b, 64 times
// larger. Scales go down to 2^-900, so denormal terms are summed exactly in a block of their
// own kind. The sum is read by one correctly rounded conversion to double, a multiply by
// 2^(E_b-P) and a division. A term far below its block's largest (2^40 smaller and more) keeps
// fewer bits than a float64 sum of it alone would; what it loses stays under the bound above.
//
// Note [Block sum overflow]
// A term with 2^E_b <= |v| < 2^40 (above its block's window: the scale lags a growing block, or
// the block held only tiny values before) is exact all the same: q = rint(y) is written in base
// 2^P, q = sum_j d_j 2^(jP) with |d_j| < 2^P, all digits with the sign of q; d_0 goes to the
// block's word and d_j (j >= 1) to the block's level-j words, which the block allocates on first
// use. Every level keeps the headroom of the first (n digits below 2^P in magnitude), so no
// level overflows. The all-reduce then carries the levels of each block that any rank used
// (8 more bytes per coordinate and level, for those blocks only), and such a block is read by an
// exact sum of its digits rounded once. A term with |v| >= 2^40, NaN or an infinity makes the
// sum invalid (the round reports divergence), as a mean of such messages would be meaningless.
//
// The transport (reduce plan): one max all-reduce of 2 int32 per block (largest exponent seen,
// and how many levels any rank used), one integer-sum all-reduce of the d words, and one of the
// level words of the blocks that need them. The gather plan adds every term on every rank and
// skips the all-reduces; both give the same bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace cohort {

class BlockSum {
 public:
  static constexpr std::int64_t kBlock = 4096;
  static constexpr int kGrowth = 2;
  static constexpr double kTermLimit = 0x1.0p40;
  static constexpr int kMaxScale = 42;    // terms below 2^40, and the growth room
  static constexpr int kMinScale = -900;  // keeps 2^(E-P) and the digits' places normal doubles

  BlockSum() = default;
  // d coordinates; at most max_terms terms per sum (fixes P).
  BlockSum(std::int64_t d, std::int64_t max_terms);

  // Starts a sum: words to zero, scales kept.
  void clear();
  // Adds the term w x[i] to coordinate i, for every i < d.
  void add(const float* x, double w);

  // ---- Finishing a sum (Note [Deterministic sums], "The transport") ----
  // 1. seal(): 2 int32 per block [largest exponent code, levels used] from this rank's terms;
  //    max-reduce them over the ranks, in place.
  std::span<std::int32_t> seal();
  // 2. pack_spill(): the level words of every block any rank used, this rank's values or
  //    zeros, contiguously. Sum-reduce them and words() over the ranks, in place.
  std::span<std::int64_t> pack_spill();
  std::span<std::int64_t> words() { return words_; }
  // 3. read(): out[i] = sum_i / divisor rounded to float; then the scales (E_b) move to this
  //    sum's largest terms. Every rank holds the same reduced meta and words here, so every rank
  //    ends with the same scales.
  void read(float* out, double divisor);
  // Sum of coordinate i as a double (after the reductions, before read()).
  double value(std::int64_t i) const;

  // False when a term was NaN, infinite or |w x| >= 2^40 on this rank.
  bool valid() const { return valid_; }
  // Terms whose every value is at hand (offline): scales from their largest values, with no
  // growth room, so that no term needs the higher levels.
  void fit_scales(std::span<const float* const> rows, std::span<const double> weights);

  std::int64_t size() const { return d_; }
  int precision() const { return p_; }
  std::span<const std::int16_t> scales() const { return scales_; }
  void set_scales(std::span<const std::int16_t> s);

 private:
  std::int64_t blocks() const { return static_cast<std::int64_t>(scales_.size()); }
  double coordinate(std::int64_t b, std::int64_t i) const;

  std::int64_t d_ = 0, max_terms_ = 1, terms_ = 0;
  int p_ = 61;
  bool valid_ = true;
  std::vector<std::int64_t> words_;
  std::vector<std::int16_t> scales_;
  std::vector<double> block_max_;   // largest |y| added per block, this rank, this sum
  std::vector<std::int32_t> meta_;  // 2 per block
  std::vector<std::vector<std::int64_t>> levels_;  // per block: level j at (j-1) kBlock
  std::vector<std::int32_t> used_;                 // per block: levels in use on this rank
  std::vector<std::int64_t> packed_, packed_at_;   // levels of every block in use; offset or -1
};

namespace detail {
// The kernels of BlockSum::add for one block, by ISA (exposed for the path-equality tests):
// words[i] += rint(x[i] * c) while |x[i] c| < window (<= 2^62); lanes outside the window (and
// non-finite ones) go through `slow`. Returns the largest |x[i] c| of the lanes taken on the fast
// path.
using SlowLane = void (*)(void* ctx, std::int64_t i, double y);
double block_add(const float* x, std::int64_t n, double c, double window, std::int64_t* words,
                 SlowLane slow, void* ctx);
// out[i] = float(double(words[i]) * scale / divisor), by ISA.
void block_read(const std::int64_t* words, std::int64_t n, double scale, double divisor,
                float* out);
}  // namespace detail

}  // namespace cohort
