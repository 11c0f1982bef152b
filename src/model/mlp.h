// mlp: fully connected network with hidden activations and a softmax cross-entropy output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/dense.h"
#include "model/model.h"

namespace cohort::model {

// Layers, in this order in the flat buffer: "fc1.w" (h1 x input_dim), "fc1.b" (h1 x 1), ...,
// "fcK.w", "fcK.b", "out.w" (num_classes x hK), "out.b" (num_classes x 1). With no hidden
// layers it is multinomial logistic regression with layers "out.w", "out.b".
// init: weights uniform(-a, a), drawn layer by layer in row-major order, with
// a = sqrt(6 / fan_in) (He) for relu and a = sqrt(6 / (fan_in + fan_out)) (Glorot) for tanh and
// sigmoid; the same rule for every weight layer, the output layer included. Biases are zero.
class Mlp : public Model {
 public:
  Mlp(std::int64_t input_dim, int num_classes, const std::vector<int>& hidden,
      Activation activation);

  std::string name() const override { return "mlp"; }
  void init(float* params, Rng& rng) const override;
  double loss_grad(const float* params, const Batch& batch, float* grad,
                   Rng* rng = nullptr) const override;
  double clipped_loss_grad(const float* params, const Batch& batch, double clip,
                           double denominator, float* grad, Rng* rng = nullptr,
                           double* norms = nullptr) const override;
  void evaluate(const float* params, const Batch& batch, double* loss_sum,
                std::int64_t* correct) const override;

 private:
  std::size_t num_dense() const { return widths_.size() - 1; }
  // Forward pass from staged params p over `rows` staged samples x: leaves layer l's output
  // (activated for hidden layers, logits for the last) in acts_[l] and returns the logits.
  float* forward(const float* p, const float* x, std::int64_t rows) const;
  // The backward pass after forward, with acts_.back() holding d(loss)/d(logits): writes the
  // gradient into the staged g. Consumes the activations (acts_[l] becomes layer l's delta).
  void backward(const float* p, const float* x, std::int64_t rows, float* g) const;

  std::vector<std::int64_t> widths_;  // input_dim, hidden sizes..., num_classes
  Activation activation_;
  // Scratch (Note [Address-independent results]); the model is used by one thread.
  mutable detail::AlignedBuffer params_in_, x_in_, grad_out_, delta_;
  mutable std::vector<detail::AlignedBuffer> acts_;  // one per dense layer
  // clipped_loss_grad's deltas (two, alternating) and per-example squared norms.
  mutable detail::AlignedBuffer norm_delta_[2];
  mutable std::vector<double> sq_, part_;
};

// Its options, schema entry and factory (Note [Registration]).
ModelRegistration mlp_registration();

}  // namespace cohort::model
