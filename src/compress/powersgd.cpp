// PowerSGD: the power step's maths and the per-client compressor (docs/algorithms.md §2).
#include "compress/powersgd.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

namespace cohort::compress::powersgd {
namespace {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixView = Eigen::Map<RowMajorMatrix>;
using ConstMatrixView = Eigen::Map<const RowMajorMatrix>;

// Note [PowerSGD product addresses]
// The products must depend only on the values of M, P and Q, never on where the caller's buffers
// lie (Note [Address-independent results] in model/dense.h): a message's layers start at
// arbitrary offsets. Eigen 3.4 sends a dynamic product whose (inner + rows + cols) is below
// EIGEN_GEMM_TO_COEFFBASED_THRESHOLD to its coefficient-based path, which model/dense.h found
// address-dependent; larger products go to GEMM, or to GEMV when the result is a single row or
// column, and both read and write through unaligned loads and stores. For the three products
// here (M Q, M^T P, P Q^T) that sum is rows + cols + r. So a small problem (M of at most 81
// floats) is computed on copies at kAlignBytes boundaries, and a large one in place: copying a
// large M would cost about as much as a product. (With Eigen 3.4.0 and these row-major maps we
// found no shift of 1..15 floats that changes any small product, for every shape with
// rows + cols + r < 20, under SSE2, AVX2+FMA and AVX-512; Eigen promises nothing of the kind,
// so the copies stay.) Eigen's GEMM block sizes follow the CPU's cache sizes, so different CPU
// models may still round differently, as for the models.
constexpr std::size_t kAlignBytes = 64;  // the widest packet on any target (AVX-512)

bool small_product(std::int64_t rows, std::int64_t cols, int r) {
  return rows + cols + r < EIGEN_GEMM_TO_COEFFBASED_THRESHOLD;
}

// n floats at a kAlignBytes boundary, freed on scope exit.
class AlignedFloats {
 public:
  explicit AlignedFloats(std::int64_t n) {
    const std::size_t bytes =
        (static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * sizeof(float) + kAlignBytes - 1) /
        kAlignBytes * kAlignBytes;
    void* p = std::aligned_alloc(kAlignBytes, bytes);
    if (p == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<float*>(p));
  }
  float* get() const { return data_.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
};

// Runs compute(a, b, out) in place, or for a small product on aligned copies of a and b into an
// aligned output that is then copied to out (Note [PowerSGD product addresses]).
template <class Compute>
void staged_product(bool small, const float* a, std::int64_t a_size, const float* b,
                    std::int64_t b_size, float* out, std::int64_t out_size, Compute compute) {
  if (!small) {
    compute(a, b, out);
    return;
  }
  AlignedFloats sa(a_size), sb(b_size), so(out_size);
  std::copy_n(a, a_size, sa.get());
  std::copy_n(b, b_size, sb.get());
  compute(sa.get(), sb.get(), so.get());
  std::copy_n(so.get(), out_size, out);
}

void check_rank(int r, const char* who) {
  if (r < 1)
    throw std::invalid_argument(std::string("powersgd ") + who + ": rank must be at least 1, got " +
                                std::to_string(r));
}

}  // namespace

bool compressible(std::int64_t rows, std::int64_t cols) { return rows >= 2 && cols >= 2; }

int effective_rank(std::int64_t rows, std::int64_t cols, int rank) {
  return static_cast<int>(std::min<std::int64_t>({rows, cols, static_cast<std::int64_t>(rank)}));
}

void initial_q(const MessageContext& ctx, const LayerShape& layer, int r, float* q) {
  Rng rng = ctx.shared_rng(layer.index);
  const std::int64_t n = layer.cols * r;
  for (std::int64_t i = 0; i < n; ++i) q[i] = static_cast<float>(rng.normal());
}

void multiply_p(const float* m, const float* q, std::int64_t rows, std::int64_t cols, int r,
                float* p) {
  if (rows == 0 || r == 0) return;
  staged_product(small_product(rows, cols, r), m, rows * cols, q, cols * r, p, rows * r,
                 [&](const float* sm, const float* sq, float* sp) {
                   MatrixView(sp, rows, r).noalias() =
                       ConstMatrixView(sm, rows, cols) * ConstMatrixView(sq, cols, r);
                 });
}

void orthonormalize(float* p, std::int64_t rows, int r) {
  for (int j = 0; j < r; ++j) {
    double sq = 0.0;
    for (std::int64_t i = 0; i < rows; ++i) {
      const double x = p[i * r + j];
      sq += x * x;
    }
    const double denom = std::sqrt(sq) + 1e-8;
    for (std::int64_t i = 0; i < rows; ++i)
      p[i * r + j] = static_cast<float>(static_cast<double>(p[i * r + j]) / denom);
    for (int k = j + 1; k < r; ++k) {
      double dot = 0.0;
      for (std::int64_t i = 0; i < rows; ++i)
        dot += static_cast<double>(p[i * r + j]) * static_cast<double>(p[i * r + k]);
      for (std::int64_t i = 0; i < rows; ++i)
        p[i * r + k] = static_cast<float>(static_cast<double>(p[i * r + k]) -
                                          dot * static_cast<double>(p[i * r + j]));
    }
  }
}

void multiply_q(const float* m, const float* p_hat, std::int64_t rows, std::int64_t cols, int r,
                float* q) {
  if (cols == 0 || r == 0) return;
  staged_product(small_product(rows, cols, r), m, rows * cols, p_hat, rows * r, q, cols * r,
                 [&](const float* sm, const float* sp, float* sq) {
                   MatrixView(sq, cols, r).noalias() =
                       ConstMatrixView(sm, rows, cols).transpose() * ConstMatrixView(sp, rows, r);
                 });
}

void reconstruct(const float* p_hat, const float* q, std::int64_t rows, std::int64_t cols, int r,
                 float* out) {
  if (rows == 0 || cols == 0) return;
  if (r == 0) {
    std::fill_n(out, rows * cols, 0.0f);
    return;
  }
  staged_product(small_product(rows, cols, r), p_hat, rows * r, q, cols * r, out, rows * cols,
                 [&](const float* sp, const float* sq, float* so) {
                   MatrixView(so, rows, cols).noalias() =
                       ConstMatrixView(sp, rows, r) * ConstMatrixView(sq, cols, r).transpose();
                 });
}

void PowerSgdCompressor::encode_layer(std::span<const float> v, const LayerShape& layer,
                                      const MessageContext& ctx, std::span<float> state,
                                      Rng& /*private_rng*/, BitWriter& out) const {
  const std::int64_t rows = layer.rows, cols = layer.cols;
  if (static_cast<std::int64_t>(v.size()) != layer.size())
    throw std::invalid_argument("powersgd: layer has " + std::to_string(layer.size()) +
                                " values, the message slice " + std::to_string(v.size()));
  if (!compressible(rows, cols)) {
    for (const float x : v) out.put_f32(x);
    return;
  }
  check_rank(rank_, "encode");
  const int r = effective_rank(rows, cols, rank_);
  // An empty state (a client that keeps none) encodes cold and remembers nothing.
  const bool keep = warm_start_ && !state.empty();
  if (keep && static_cast<std::int64_t>(state.size()) != state_floats(layer))
    throw std::invalid_argument("powersgd: layer state has " + std::to_string(state.size()) +
                                " floats, expected " + std::to_string(state_floats(layer)));
  const std::int64_t qn = cols * r;
  AlignedFloats q(qn), p(rows * r);
  if (keep && state[qn] != 0.0f)
    std::copy_n(state.data(), qn, q.get());
  else
    initial_q(ctx, layer, r, q.get());
  multiply_p(v.data(), q.get(), rows, cols, r, p.get());
  orthonormalize(p.get(), rows, r);
  multiply_q(v.data(), p.get(), rows, cols, r, q.get());
  for (std::int64_t i = 0; i < rows * r; ++i) out.put_f32(p.get()[i]);
  for (std::int64_t i = 0; i < qn; ++i) out.put_f32(q.get()[i]);
  if (keep) {
    std::copy_n(q.get(), qn, state.data());
    state[qn] = 1.0f;
  }
}

void PowerSgdCompressor::decode_layer(BitReader& in, const LayerShape& layer,
                                      const MessageContext& /*ctx*/, std::span<float> out) const {
  const std::int64_t rows = layer.rows, cols = layer.cols;
  if (static_cast<std::int64_t>(out.size()) != layer.size())
    throw std::invalid_argument("powersgd: layer has " + std::to_string(layer.size()) +
                                " values, the output slice " + std::to_string(out.size()));
  if (!compressible(rows, cols)) {
    for (float& x : out) x = in.get_f32();
    return;
  }
  check_rank(rank_, "decode");
  const int r = effective_rank(rows, cols, rank_);
  AlignedFloats p(rows * r), q(cols * r);
  for (std::int64_t i = 0; i < rows * r; ++i) p.get()[i] = in.get_f32();
  for (std::int64_t i = 0; i < cols * r; ++i) q.get()[i] = in.get_f32();
  reconstruct(p.get(), q.get(), rows, cols, r, out.data());
}

std::int64_t PowerSgdCompressor::state_floats(const LayerShape& layer) const {
  if (!warm_start_ || !compressible(layer.rows, layer.cols) || rank_ < 1) return 0;
  return layer.cols * effective_rank(layer.rows, layer.cols, rank_) + 1;
}

}  // namespace cohort::compress::powersgd
