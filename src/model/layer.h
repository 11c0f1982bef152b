// The layers of the convolutional models (docs/models.md): each one maps a batch of samples of
// one shape to a batch of another, with its parameters, if any, in the model's flat buffer.
// Used by src/model, the layer tests and `cohort bench train` (which times single layers).
//
// Note [Layer engine]
// A model is a Stack of Layers; a residual block is a Layer holding two Stacks. Samples are
// stored one after another, each channel-major (channels x height x width). Parameters stay one
// flat float32 buffer: each layer appends its LayerViews (a conv kernel is out x (in k k), so
// PowerSGD sees a matrix) and remembers where its first one starts. Every layer keeps its scratch
// (outputs, pooling indices, dropout masks, normalisation statistics) in its own members, so two
// model instances never share mutable state and each instance is used by one thread. Convolutions
// are im2col and one Eigen GEMM per sample (EIGEN_DONT_PARALLELIZE: one thread); every other sum
// runs in a fixed order in plain loops, so a pass gives the same bits at any buffer address
// (Note [Address-independent results]) and whichever rank runs it. A training pass draws dropout
// masks from the Rng it is given, in layer order and sample-major order within a layer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/layers.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "model/dense.h"

namespace cohort::model {

using data::Shape;

// "26×26×32" for images, "128" for flat samples.
std::string shape_text(const Shape& s);

// A training pass carries the stream dropout draws from; an evaluation pass has none.
struct Pass {
  Rng* rng = nullptr;
  bool training() const { return rng != nullptr; }
};

class Layer {
 public:
  explicit Layer(Shape in) : in_(in), out_(in) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  Shape in_shape() const { return in_; }
  Shape out_shape() const { return out_; }
  // "conv2d 32→64 3×3", as the start-up summary shows it.
  virtual std::string describe() const = 0;
  // The name stem of a layer with parameters ("conv": conv1.w, conv1.b); empty without.
  virtual std::string param_stem() const { return {}; }
  // Appends the layer's parameter views, named prefix.*, after the last one in `layers`.
  virtual void add_params(std::vector<LayerView>&, const std::string& /*prefix*/) {}
  virtual std::int64_t num_params() const { return 0; }
  // Writes the layer's initial parameters into the model's buffer, drawing from rng.
  virtual void init(float* /*params*/, Rng& /*rng*/) const {}
  // y (n samples of out_shape) from x (n samples of in_shape); params is the model's buffer.
  virtual void forward(const float* params, const float* x, std::int64_t n, float* y,
                       const Pass& pass) = 0;
  // Given the last forward's x and y and dy = dL/dy: writes the layer's parameter gradient into
  // grad (the model's gradient buffer, this layer's slots overwritten) and, when dx is not null,
  // dx = dL/dx.
  virtual void backward(const float* params, const float* x, const float* y, const float* dy,
                        std::int64_t n, float* grad, float* dx) = 0;
  // Note [Per-example clipping] (model/model.h): like backward, but instead of the parameter
  // gradient adds each sample's squared norm of its own parameter gradient to sq[s] (n values);
  // dx as backward writes it. Layers with parameters compute the per-sample parts in batched form
  // (dense: |dy_s|^2 (|x_s|^2 + 1); convolution: one product per sample, as its backward pass
  // does); those without have none and run backward.
  virtual void example_sqnorms(const float* params, const float* x, const float* y,
                               const float* dy, std::int64_t n, float* dx, double* sq);
  // Floating-point operations of one sample's forward pass (a multiply-add counts 2).
  virtual double forward_flops() const { return 0.0; }
  // Those of its backward pass, with or without dx.
  virtual double backward_flops(bool /*with_dx*/) const { return 0.0; }
  // Floats of scratch one sample needs beyond the output (im2col, inner outputs), an estimate.
  virtual double scratch_floats() const { return 0.0; }
  // Summary lines of the layers inside (residual blocks); empty otherwise.
  virtual std::vector<std::string> inner_summary() const { return {}; }

 protected:
  Shape in_, out_;
  std::int64_t offset_ = 0;  // the first parameter in the flat buffer
};

// A chain of layers with each layer's output kept for the backward pass.
class Stack {
 public:
  void push(std::unique_ptr<Layer> layer);
  bool empty() const { return layers_.empty(); }
  Shape out_shape(const Shape& in) const {
    return layers_.empty() ? in : layers_.back()->out_shape();
  }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  void add_params(std::vector<LayerView>& layers, const std::string& prefix);
  std::int64_t num_params() const;
  void init(float* params, Rng& rng) const;
  // Runs every layer; returns the last one's output (x itself for an empty stack).
  const float* forward(const float* params, const float* x, std::int64_t n, const Pass& pass);
  // The backward pass of the last forward from its x; dx may be null.
  void backward(const float* params, const float* x, const float* dy, std::int64_t n, float* grad,
                float* dx);
  // Layer::example_sqnorms through the stack after its last forward; dx may be null.
  void example_sqnorms(const float* params, const float* x, const float* dy, std::int64_t n,
                       float* dx, double* sq);
  double forward_flops() const;
  double backward_flops(bool with_dx) const;
  // Floats one sample keeps through a training pass: outputs, deltas and scratch (double: the
  // shapes come from the user and the sum is compared with memory, Note [Input sizes]).
  double sample_floats() const;
  // One line per layer: "conv2d 1→32 3×3: 28×28×1 → 26×26×32, 320 params".
  std::vector<std::string> summary(const std::string& indent) const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<detail::AlignedBuffer> outs_;
  detail::AlignedBuffer delta_[2];
};

// The layers. Each constructor throws UsageError when the layer cannot take `in`, saying why with
// the shapes involved; the caller adds which layer of the list it is.
std::unique_ptr<Layer> make_conv2d(Shape in, std::int64_t out_channels, std::int64_t kernel,
                                   std::int64_t stride, std::int64_t padding, bool bias);
enum class PoolKind { kMax, kAverage };
std::unique_ptr<Layer> make_pool(Shape in, PoolKind kind, std::int64_t kernel, std::int64_t stride);
// Average over each channel's whole image: C x H x W -> C.
std::unique_ptr<Layer> make_global_avgpool(Shape in);
enum class Elementwise { kRelu, kTanh };
std::unique_ptr<Layer> make_activation(Shape in, Elementwise kind);
std::unique_ptr<Layer> make_dropout(Shape in, double p);
std::unique_ptr<Layer> make_group_norm(Shape in, std::int64_t groups, bool affine);
std::unique_ptr<Layer> make_flatten(Shape in);
// Fully connected on the C·H·W values of each sample (flattened in storage order).
std::unique_ptr<Layer> make_linear_layer(Shape in, std::int64_t out);
// The basic residual block: relu(GN(conv3×3(relu(GN(conv3×3/stride(x))))) + shortcut(x)); the
// shortcut is x itself, or GN(conv1×1/stride(x)) when the stride or the channel count changes.
std::unique_ptr<Layer> make_residual(Shape in, std::int64_t out_channels, std::int64_t stride,
                                     std::int64_t groups);

}  // namespace cohort::model
