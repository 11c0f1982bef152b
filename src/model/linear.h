// linear: least-squares regression y = w.x + b with per-sample loss 0.5 (y - t)^2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/dense.h"
#include "model/model.h"

namespace cohort::model {

// Layers: "w" (1 x input_dim) and, with bias, "b" (1 x 1). w starts at `init` in every
// coordinate (0 by default), b at 0.
class Linear : public Model {
 public:
  explicit Linear(std::int64_t input_dim, bool bias = true, float init = 0.0f);

  std::string name() const override { return "linear"; }
  void init(float* params, Rng& rng) const override;
  double loss_grad(const float* params, const Batch& batch, float* grad,
                   Rng* rng = nullptr) const override;
  double clipped_loss_grad(const float* params, const Batch& batch, double clip,
                           double denominator, float* grad, Rng* rng = nullptr,
                           double* norms = nullptr) const override;
  void evaluate(const float* params, const Batch& batch, double* loss_sum,
                std::int64_t* correct) const override;

 private:
  // From staged params p and features x: fills residuals_ with y - t for every row and returns
  // the sum of 0.5 (y - t)^2.
  double residuals(const float* p, const float* x, const Batch& batch) const;
  // The gradient from the (scaled) residuals r of `rows` rows of x: w = X^T r, b = sum(r).
  void gradient_from_residuals(const float* x, std::int64_t rows, const float* r, float* g) const;

  std::int64_t input_dim_;
  bool bias_;
  float init_;
  // Scratch (Note [Address-independent results]); the model is used by one thread.
  mutable detail::AlignedBuffer params_in_, x_in_, grad_out_, residuals_;
  mutable std::vector<double> xsq_;  // clipped_loss_grad's |x_n|^2
};

// Its options, schema entry and factory (Note [Registration]).
ModelRegistration linear_registration();

}  // namespace cohort::model
