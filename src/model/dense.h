// Building blocks shared by the CPU models (linear, logreg, mlp): aligned scratch buffers,
// row-major Eigen views, fully connected layers and the softmax cross-entropy head.
// Internal to src/model; outside it only through layer.h, which the layer tests and `cohort bench
// train` use to time and check single layers.
//
// Note [Address-independent results]
// A model's loss and gradient must depend only on the parameters and the batch contents, never
// on where the caller's buffers happen to lie in memory. Eigen 3.4's GEMM and GEMV kernels read
// and write through unaligned loads and stores, so they are address-independent. Its other paths
// are not: the coefficient-based path for small products (inner + rows + cols < 20), linear
// reductions (sum, maxCoeff) and vectorised element-wise functions (exp, tanh, logistic) handle
// the elements before the first aligned address with scalar code and the rest with packets, and
// the two round differently. So the models compute only on buffers whose base address is a
// multiple of kAlignBytes: a caller's buffer is used in place when it is aligned and is copied
// into (or, for outputs, produced in and copied out of) an aligned scratch buffer otherwise.
// Both routes see the same address residues and give bit-identical results.
// Two limits remain outside the models' control: Eigen picks GEMM block sizes from the CPU's
// cache sizes, so different CPU models may round differently; and with OpenMP Eigen's GEMM would
// use threads, which the models assume it does not (CMakeLists.txt sets EIGEN_DONT_PARALLELIZE).
#pragma once

#include <Eigen/Dense>

#include "model/gemm.h"
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "model/model.h"

namespace cohort::model::detail {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixView = Eigen::Map<RowMajorMatrix>;
using ConstMatrixView = Eigen::Map<const RowMajorMatrix>;
using VectorView = Eigen::Map<Eigen::VectorXf>;
using ConstVectorView = Eigen::Map<const Eigen::VectorXf>;

// At least the widest packet of any product path: AVX-512's 64 bytes (Note [Address-independent
// results], Note [Model GEMM paths]).
inline constexpr std::size_t kAlignBytes = 64;

// evaluate() works through large batches (a whole test set) in chunks of this many rows, so
// its scratch stays small. Per-row results do not depend on the chunking beyond rounding.
inline constexpr std::int64_t kEvalChunkRows = 512;

inline bool is_aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % kAlignBytes == 0;
}

// Growable float scratch aligned to kAlignBytes. Contents are unspecified after reserve().
class AlignedBuffer {
 public:
  float* reserve(std::int64_t n) {
    if (n > capacity_) {
      const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(float) + kAlignBytes - 1) /
                                kAlignBytes * kAlignBytes;
      void* p = std::aligned_alloc(kAlignBytes, bytes);
      if (p == nullptr) throw std::bad_alloc();
      data_.reset(static_cast<float*>(p));
      capacity_ = n;
    }
    return data_.get();
  }
  // The storage of the last reserve().
  float* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  std::int64_t capacity_ = 0;
};

// An input of n floats at an aligned address: p itself, or a copy of it in scratch.
inline const float* stage_in(const float* p, std::int64_t n, AlignedBuffer& scratch) {
  if (n == 0 || is_aligned(p)) return p;
  float* copy = scratch.reserve(n);
  std::copy_n(p, n, copy);
  return copy;
}

// Where to produce an output of n floats meant for p; finish_out copies it to p if needed.
inline float* stage_out(float* p, std::int64_t n, AlignedBuffer& scratch) {
  return (n == 0 || is_aligned(p)) ? p : scratch.reserve(n);
}
inline void finish_out(const float* staged, float* p, std::int64_t n) {
  if (staged != p) std::copy_n(staged, n, p);
}

// Throws std::invalid_argument unless the batch fits a model with input_dim features.
inline void check_batch(const Batch& batch, std::int64_t input_dim, bool classification,
                        const char* model) {
  const std::string who = std::string(model) + ": ";
  if (batch.dim != input_dim)
    throw std::invalid_argument(who + "batch has " + std::to_string(batch.dim) +
                                " features, the model expects " + std::to_string(input_dim));
  if (batch.rows < 0) throw std::invalid_argument(who + "negative batch size");
  if (batch.rows == 0) return;
  if (batch.x == nullptr) throw std::invalid_argument(who + "batch has no features");
  if (classification && batch.labels == nullptr)
    throw std::invalid_argument(who + "batch has no labels (classification model)");
  if (!classification && batch.targets == nullptr)
    throw std::invalid_argument(who + "batch has no targets (regression model)");
}

// Appends a rows x cols layer after the last one.
// The sizes come from the data and model.* keys, so the arithmetic is checked (Note [Input sizes]).
inline void add_layer(std::vector<LayerView>& layers, std::string name, std::int64_t rows,
                      std::int64_t cols) {
  const std::string what = "model layer " + name + " (" + std::to_string(rows) + " x " +
                           std::to_string(cols) + ")";
  checked_mul(rows, cols, what);
  const std::int64_t offset =
      layers.empty() ? 0 : checked_add(layers.back().offset, layers.back().size(), what);
  checked_add(offset, rows * cols, what);
  layers.push_back(LayerView{std::move(name), offset, rows, cols});
}

// z (rows x out) = x (rows x in) w^T + 1 b^T, with w (out x in) row-major and b (out).
inline void dense_forward(const float* w, const float* b, std::int64_t out, std::int64_t in,
                          const float* x, std::int64_t rows, float* z) {
  gemm(false, true, rows, out, in, x, w, false, z);
  MatrixView(z, rows, out).rowwise() += ConstVectorView(b, out).transpose();
}

// Backward pass of dense_forward given dz = dL/dz (rows x out): dw = dz^T x, db = column sums of
// dz and, when dx is not null, dx = dz w (rows x in).
inline void dense_backward(const float* w, std::int64_t out, std::int64_t in, const float* x,
                           const float* dz, std::int64_t rows, float* dw, float* db, float* dx) {
  const ConstMatrixView dzm(dz, rows, out);
  gemm(true, false, out, in, rows, dz, x, false, dw);
  VectorView(db, out).noalias() = dzm.colwise().sum().transpose();
  if (dx != nullptr) gemm(false, false, rows, in, out, dz, w, false, dx);
}

// Squared Euclidean norms of the rows of a (rows x cols), double sums in index order.
inline void row_sqnorms(const float* a, std::int64_t rows, std::int64_t cols, double* out) {
  for (std::int64_t i = 0; i < rows; ++i) {
    double s = 0.0;
    const float* row = a + i * cols;
    for (std::int64_t j = 0; j < cols; ++j) s += static_cast<double>(row[j]) * row[j];
    out[i] = s;
  }
}

// Note [Per-example clipping]: the factor min(1, clip / norm) of an example whose gradient has
// squared norm sq (1 for clip = infinity, a zero gradient or a NaN norm; 0 for an infinite
// norm).
inline double clip_factor(double clip, double sq) {
  const double norm = std::sqrt(sq);
  return norm > clip ? clip / norm : 1.0;
}

// Softmax cross-entropy over the rows of z (rows x classes), by log-sum-exp around the row
// maximum. Returns the sum of per-sample losses, accumulated in double. When correct is not
// null, adds the number of rows whose argmax (lowest index on ties) equals the label. When
// write_grad is set, overwrites z with grad_scale * (softmax(z) - onehot(label)).
inline double softmax_cross_entropy(float* z, std::int64_t rows, int classes,
                                    const std::int32_t* labels, std::int64_t* correct,
                                    bool write_grad, float grad_scale) {
  double loss = 0.0;
  std::int64_t hits = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    float* zi = z + i * classes;
    const std::int32_t label = labels[i];
    if (label < 0 || label >= classes)
      throw std::out_of_range("softmax cross-entropy: label " + std::to_string(label) +
                              " outside [0, " + std::to_string(classes) + ")");
    int arg = 0;
    for (int j = 1; j < classes; ++j)
      if (zi[j] > zi[arg]) arg = j;
    const double max = zi[arg];
    const double z_label = zi[label];
    double sum = 0.0;
    for (int j = 0; j < classes; ++j) {
      const double e = std::exp(static_cast<double>(zi[j]) - max);
      sum += e;
      if (write_grad) zi[j] = static_cast<float>(e);
    }
    loss += std::log(sum) - (z_label - max);
    hits += arg == label;
    if (write_grad) {
      const double inv_sum = 1.0 / sum;
      for (int j = 0; j < classes; ++j)
        zi[j] = static_cast<float>((zi[j] * inv_sum - (j == label ? 1.0 : 0.0)) * grad_scale);
    }
  }
  if (correct != nullptr) *correct += hits;
  return loss;
}

// The second half of clipped_loss_grad (Note [Per-example clipping]) for a softmax head: from
// the per-example squared gradient norms sq (rows values), writes the norms when asked and
// overwrites the logits z with (c_n / denominator) (softmax(z_n) - onehot(label_n)), row by row
// through softmax_cross_entropy, so that c_n = 1 and denominator = rows give its bits exactly.
inline void clipped_softmax_grad(float* z, std::int64_t rows, int classes,
                                 const std::int32_t* labels, const double* sq, double clip,
                                 double denominator, double* norms) {
  const float inv = 1.0f / static_cast<float>(denominator);
  for (std::int64_t i = 0; i < rows; ++i) {
    if (norms != nullptr) norms[i] = std::sqrt(sq[i]);
    const float scale = static_cast<float>(clip_factor(clip, sq[i])) * inv;
    softmax_cross_entropy(z + i * classes, 1, classes, labels + i, nullptr, true, scale);
  }
}

}  // namespace cohort::model::detail
