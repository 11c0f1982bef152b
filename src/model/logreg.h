// logreg: multinomial logistic regression with softmax cross-entropy loss.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/dense.h"
#include "model/model.h"

namespace cohort::model {

// Layers: "w" (num_classes x input_dim), "b" (num_classes x 1). Initialised to zeros.
class LogReg : public Model {
 public:
  LogReg(std::int64_t input_dim, int num_classes);

  std::string name() const override { return "logreg"; }
  void init(float* params, Rng& rng) const override;
  double loss_grad(const float* params, const Batch& batch, float* grad,
                   Rng* rng = nullptr) const override;
  double clipped_loss_grad(const float* params, const Batch& batch, double clip,
                           double denominator, float* grad, Rng* rng = nullptr,
                           double* norms = nullptr) const override;
  void evaluate(const float* params, const Batch& batch, double* loss_sum,
                std::int64_t* correct) const override;

 private:
  std::int64_t input_dim_;
  int num_classes_;
  // Scratch (Note [Address-independent results]); the model is used by one thread.
  mutable detail::AlignedBuffer params_in_, x_in_, grad_out_, logits_, dlogits_;
  mutable std::vector<double> sq_, xsq_;  // clipped_loss_grad's per-example squared norms
};

// Its schema entry and factory (Note [Registration]).
ModelRegistration logreg_registration();

}  // namespace cohort::model
