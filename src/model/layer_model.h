// Models built from layers (Note [Layer engine]): the user's `model.layers:` list and the named
// architectures cnn_mnist, lenet5, resnet8 and resnet20 (docs/models.md).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/layer.h"
#include "model/model.h"

namespace cohort::model {

// A stack of layers on samples of one shape, ending in `classes` outputs; softmax cross-entropy.
class LayerModel final : public Model {
 public:
  // Throws UsageError unless the stack takes `input` and ends in `classes` flat outputs.
  LayerModel(std::string name, Shape input, int classes, Stack stack);

  std::string name() const override { return name_; }
  void init(float* params, Rng& rng) const override;
  double loss_grad(const float* params, const Batch& batch, float* grad,
                   Rng* rng = nullptr) const override;
  double clipped_loss_grad(const float* params, const Batch& batch, double clip,
                           double denominator, float* grad, Rng* rng = nullptr,
                           double* norms = nullptr) const override;
  void evaluate(const float* params, const Batch& batch, double* loss_sum,
                std::int64_t* correct) const override;
  std::string summary() const override;

  Shape input_shape() const { return input_; }
  // Floating-point operations per sample of a forward pass, and of a backward pass (no
  // gradient for the input).
  double forward_flops() const { return stack_.forward_flops(); }
  double backward_flops() const { return stack_.backward_flops(false); }

 private:
  void check(const Batch& batch) const;
  // The gradient of the chunk (x, its output gradient dl, n rows) into g (the first chunk) or
  // added to g coordinate by coordinate (later chunks, in chunk order).
  void backward_chunk(const float* p, const float* x, const float* dl, std::int64_t n,
                      bool first, float* g) const;

  std::string name_;
  Shape input_;
  int classes_;
  // The layers hold their scratch (Note [Layer engine]): this instance is used by one thread.
  mutable Stack stack_;
  mutable detail::AlignedBuffer params_in_, x_in_, grad_out_, grad_part_, dlogits_, dnorm_;
  mutable std::vector<double> sq_;  // clipped_loss_grad's per-example squared norms
};

// One item of `model.layers:`: its keys and values as written.
using LayerSpec = std::map<std::string, std::string>;
// The keys a layer item may hold (the schema's item keys).
const std::vector<std::string>& layer_keys();
// The stack a list describes on samples of shape `in`. UsageError names the item (list[index]
// and its type), the key or the shapes that do not fit.
Stack build_stack(Shape in, const std::vector<LayerSpec>& specs,
                  const std::string& list = "model.layers");

// The named architectures on samples of shape `in` (docs/models.md).
std::unique_ptr<LayerModel> make_cnn_mnist(Shape in, int classes);
std::unique_ptr<LayerModel> make_lenet5(Shape in, int classes);
// CIFAR-style ResNet-(6n+2) with n basic blocks per stage and GroupNorm of `groups` groups.
std::unique_ptr<LayerModel> make_resnet(Shape in, int classes, int blocks_per_stage, int groups);

// Their schema entries and factories (Note [Registration]).
ModelRegistration cnn_mnist_registration();
ModelRegistration lenet5_registration();
ModelRegistration resnet8_registration();
ModelRegistration resnet20_registration();
ModelRegistration layers_registration();

}  // namespace cohort::model
