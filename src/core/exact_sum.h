// Order-independent sums of floating-point vectors.
//
// Note [Exact small sums]
// Sums whose terms span any magnitude and that are too small to be worth a scale: the round's
// scalar metrics (train loss, clients that trained), the attacks' honest-message statistics and
// PowerSGD's P and Q. Each term v (a double) becomes the integer q = trunc(v * 2^64), stored as a
// wrapping 128-bit two's-complement word; integer addition is exact, associative and
// commutative, so the order and the rank count cannot change a bit. Every float32 with
// |v| >= 2^-41 lies on the 2^-64 grid, so sums of such terms are exact; smaller terms are
// truncated (an error below 2^-64 per term). Terms must satisfy |v| < 2^40 (kExactLimit) so that
// up to 2^22 of them cannot overflow 2^127; a larger or non-finite term marks the accumulator
// invalid. The result is rounded once, to double, when it is read. Message means take the
// faster 8-byte sums of Note [Deterministic sums] (core/block_sum.h) instead.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace cohort {

using Exact128 = unsigned __int128;
inline constexpr double kExactScale = 0x1.0p64;
inline constexpr double kExactLimit = 0x1.0p40;

// trunc(v * 2^64) as a wrapping 128-bit word; sets *ok = false for |v| >= 2^40 or NaN.
inline Exact128 to_exact(double v, bool* ok) {
  if (!(std::fabs(v) < kExactLimit)) {
    *ok = false;
    return 0;
  }
  const __int128 q = static_cast<__int128>(v * kExactScale);
  return static_cast<Exact128>(q);
}

inline double from_exact(Exact128 w) {
  return static_cast<double>(static_cast<__int128>(w)) / kExactScale;
}

// A vector of exact sums.
class ExactAccumulator {
 public:
  explicit ExactAccumulator(std::int64_t n = 0) : words_(static_cast<std::size_t>(n), 0) {}
  void resize(std::int64_t n) { words_.assign(static_cast<std::size_t>(n), 0); }
  void clear() {
    std::fill(words_.begin(), words_.end(), Exact128{0});
    valid_ = true;
  }
  std::int64_t size() const { return static_cast<std::int64_t>(words_.size()); }

  // words += weight * v (v of length size()).
  void add(const float* v, double weight = 1.0) {
    bool ok = true;
    const std::size_t n = words_.size();
    if (weight == 1.0) {
      for (std::size_t i = 0; i < n; ++i) words_[i] += to_exact(v[i], &ok);
    } else {
      for (std::size_t i = 0; i < n; ++i) words_[i] += to_exact(weight * v[i], &ok);
    }
    valid_ = valid_ && ok;
  }
  void add_at(std::int64_t i, double v) {
    bool ok = true;
    words_[static_cast<std::size_t>(i)] += to_exact(v, &ok);
    valid_ = valid_ && ok;
  }
  double value(std::int64_t i) const { return from_exact(words_[static_cast<std::size_t>(i)]); }
  // out[i] = sum_i / divisor, rounded to float.
  void read(float* out, double divisor) const {
    for (std::size_t i = 0; i < words_.size(); ++i)
      out[i] = static_cast<float>(from_exact(words_[i]) / divisor);
  }

  Exact128* data() { return words_.data(); }
  bool valid() const { return valid_; }
  void set_valid(bool v) { valid_ = v; }

 private:
  std::vector<Exact128> words_;
  bool valid_ = true;
};

}  // namespace cohort
