#include <numeric>

#include "algo/algorithm.h"

namespace cohort::algo {

BatchStream::BatchStream(std::int64_t n, std::int64_t batch_size, Rng rng)
    : n_(n), b_(batch_size <= 0 || batch_size >= n ? n : batch_size), pos_(n), full_(b_ == n),
      rng_(rng), order_(static_cast<std::size_t>(n)) {
  std::iota(order_.begin(), order_.end(), std::int64_t{0});
  if (full_) pos_ = 0;
}

std::span<const std::int64_t> BatchStream::next() {
  if (full_) return {order_.data(), order_.size()};
  if (pos_ >= n_) {
    rng_.shuffle(std::span<std::int64_t>(order_));
    pos_ = 0;
  }
  const std::int64_t len = std::min(b_, n_ - pos_);
  std::span<const std::int64_t> out(order_.data() + pos_, static_cast<std::size_t>(len));
  pos_ += len;
  return out;
}

}  // namespace cohort::algo
