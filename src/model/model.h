// Models over one flat float32 parameter buffer with per-layer views (LayerView, core/layers.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/layers.h"
#include "core/errors.h"
#include "core/registration.h"
#include "core/rng.h"
#include "data/dataset.h"

namespace cohort::model {

// A minibatch: `rows` consecutive row-major samples of `dim` features. Classification models
// read `labels`, regression models read `targets`. `shape` is a sample's channels x height x
// width (its size is dim); channels == 0 leaves it unstated, and models read flat rows.
struct Batch {
  const float* x = nullptr;
  std::int64_t rows = 0;
  std::int64_t dim = 0;
  const std::int32_t* labels = nullptr;
  const float* targets = nullptr;
  data::Shape shape{};
};

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string name() const = 0;
  std::int64_t num_params() const {
    return layers_.empty() ? 0 : layers_.back().offset + layers_.back().size();
  }
  const std::vector<LayerView>& layers() const { return layers_; }

  // Fills params (num_params floats) with the model's initialisation drawn from rng.
  virtual void init(float* params, Rng& rng) const = 0;
  // Mean loss over the batch. When grad is not null, writes the gradient of that mean loss
  // (num_params floats, overwritten, not accumulated). rng makes a training pass: stochastic
  // layers (dropout) draw from it, in a fixed order, so the client's keyed stream fixes them
  // (Note [Keyed randomness]). Without it the pass is the evaluation one (dropout off).
  virtual double loss_grad(const float* params, const Batch& batch, float* grad,
                           Rng* rng = nullptr) const = 0;
  // Note [Per-example clipping] (docs/algorithms.md §6, dp_sgd): the gradient of
  // sum_n c_n L_n / denominator over the batch's examples n, c_n = min(1, clip / |g_n|) with g_n
  // the gradient of example n's own loss L_n, written to grad (num_params floats, overwritten).
  // Returns the batch's mean loss (unweighted), as loss_grad does; when norms is not null, writes
  // |g_n| for every row. The norms come from one backward pass in batched form and the weighted
  // gradient from a second backward over the same forward pass (so dropout masks are drawn once),
  // never from a loop of single-example passes. When no example is clipped and denominator equals
  // batch.rows, grad equals loss_grad's bit for bit: the second pass is loss_grad's own backward
  // with each example's output gradient scaled by c_n / denominator = 1 / rows.
  virtual double clipped_loss_grad(const float* params, const Batch& batch, double clip,
                                   double denominator, float* grad, Rng* rng = nullptr,
                                   double* norms = nullptr) const = 0;
  // Lines describing the model layer by layer (shapes and parameters), printed at start-up; empty
  // for models without layers worth listing.
  virtual std::string summary() const { return {}; }
  // Sum of per-sample losses and number of correct predictions (0 for regression).
  virtual void evaluate(const float* params, const Batch& batch, double* loss_sum,
                        std::int64_t* correct) const = 0;

 protected:
  std::vector<LayerView> layers_;
};

enum class Activation { kRelu, kTanh, kSigmoid };

// linear: y = w.x + b, loss 0.5 (y - t)^2 (least squares; regression data). Without bias,
// y = w.x; w starts at `init` in every coordinate.
std::unique_ptr<Model> make_linear(std::int64_t input_dim, bool bias = true, float init = 0.0f);
// logreg: multinomial logistic regression, softmax cross-entropy.
std::unique_ptr<Model> make_logreg(std::int64_t input_dim, int num_classes);
// mlp: fully connected hidden layers, softmax cross-entropy output.
std::unique_ptr<Model> make_mlp(std::int64_t input_dim, int num_classes,
                                const std::vector<int>& hidden, Activation activation);

// A model's schema entry and factory (Note [Registration]): it reads the model.* keys it
// declares and refuses training data it cannot fit.
using ModelRegistration =
    Registration<std::unique_ptr<Model>(const Config& cfg, const data::Dataset& train)>;

// The check of the classifiers: UsageError on regression data.
inline void require_class_labels(const std::string& model, const data::Dataset& train) {
  require_usage(!train.is_regression(),
                "model.name = " + model + " needs class labels; regression data allows linear");
}

}  // namespace cohort::model
