#include "model/linear.h"

#include <algorithm>
#include <memory>

#include "core/errors.h"

namespace cohort::model {

Linear::Linear(std::int64_t input_dim, bool bias, float init)
    : input_dim_(input_dim), bias_(bias), init_(init) {
  require_usage(input_dim > 0,
                "linear: input dimension must be positive, got " + std::to_string(input_dim));
  detail::add_layer(layers_, "w", 1, input_dim);
  if (bias_) detail::add_layer(layers_, "b", 1, 1);
}

void Linear::init(float* params, Rng& /*rng*/) const {
  std::fill_n(params, num_params(), 0.0f);
  std::fill_n(params + layers_[0].offset, input_dim_, init_);
}

double Linear::residuals(const float* p, const float* x, const Batch& batch) const {
  const std::int64_t rows = batch.rows;
  detail::VectorView r(residuals_.reserve(rows), rows);
  r.noalias() = detail::ConstMatrixView(x, rows, input_dim_) *
                detail::ConstVectorView(p + layers_[0].offset, input_dim_);
  const float b = bias_ ? p[layers_[1].offset] : 0.0f;
  double loss = 0.0;
  for (std::int64_t i = 0; i < rows; ++i) {
    r[i] = (r[i] + b) - batch.targets[i];
    loss += 0.5 * static_cast<double>(r[i]) * static_cast<double>(r[i]);
  }
  return loss;
}

double Linear::loss_grad(const float* params, const Batch& batch, float* grad, Rng*) const {
  detail::check_batch(batch, input_dim_, /*classification=*/false, "linear");
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    if (grad != nullptr) std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const float* x = detail::stage_in(batch.x, rows * input_dim_, x_in_);
  const double loss = residuals(p, x, batch) / static_cast<double>(rows);
  if (grad == nullptr) return loss;

  // d(mean loss)/dy_i = r_i / rows; grad w = X^T r / rows, grad b = sum(r) / rows.
  float* g = detail::stage_out(grad, num_params(), grad_out_);
  detail::VectorView r(residuals_.reserve(rows), rows);
  r /= static_cast<float>(rows);
  gradient_from_residuals(x, rows, r.data(), g);
  detail::finish_out(g, grad, num_params());
  return loss;
}

// Note [Per-example clipping]: example n's gradient is r_n (x_n, 1) with r_n = y_n - t_n, so
// |g_n|^2 = r_n^2 (|x_n|^2 + 1) (without the 1 when there is no bias). The weighted residuals
// (r_n c_n) / denominator are loss_grad's r_n / rows when c_n = 1 and denominator = rows.
double Linear::clipped_loss_grad(const float* params, const Batch& batch, double clip,
                                 double denominator, float* grad, Rng*, double* norms) const {
  detail::check_batch(batch, input_dim_, /*classification=*/false, "linear");
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const float* x = detail::stage_in(batch.x, rows * input_dim_, x_in_);
  const double loss = residuals(p, x, batch) / static_cast<double>(rows);
  xsq_.resize(static_cast<std::size_t>(rows));
  detail::row_sqnorms(x, rows, input_dim_, xsq_.data());
  float* g = detail::stage_out(grad, num_params(), grad_out_);
  detail::VectorView r(residuals_.reserve(rows), rows);
  for (std::int64_t i = 0; i < rows; ++i) {
    const double sq = static_cast<double>(r[i]) * r[i] * (xsq_[i] + (bias_ ? 1.0 : 0.0));
    if (norms != nullptr) norms[i] = std::sqrt(sq);
    r[i] *= static_cast<float>(detail::clip_factor(clip, sq));
  }
  r /= static_cast<float>(denominator);
  gradient_from_residuals(x, rows, r.data(), g);
  detail::finish_out(g, grad, num_params());
  return loss;
}

void Linear::gradient_from_residuals(const float* x, std::int64_t rows, const float* r,
                                     float* g) const {
  detail::VectorView(g + layers_[0].offset, input_dim_).noalias() =
      detail::ConstMatrixView(x, rows, input_dim_).transpose() *
      detail::ConstVectorView(r, rows);
  if (bias_) {
    double b_grad = 0.0;
    for (std::int64_t i = 0; i < rows; ++i) b_grad += r[i];
    g[layers_[1].offset] = static_cast<float>(b_grad);
  }
}

void Linear::evaluate(const float* params, const Batch& batch, double* loss_sum,
                      std::int64_t* correct) const {
  detail::check_batch(batch, input_dim_, /*classification=*/false, "linear");
  *correct = 0;
  *loss_sum = 0.0;
  if (batch.rows == 0) return;
  *loss_sum = residuals(detail::stage_in(params, num_params(), params_in_),
                        detail::stage_in(batch.x, batch.rows * input_dim_, x_in_), batch);
}

std::unique_ptr<Model> make_linear(std::int64_t input_dim, bool bias, float init) {
  return std::make_unique<Linear>(input_dim, bias, init);
}

ModelRegistration linear_registration() {
  return {"linear",
          "least-squares linear regression (regression data)",
          {opt_bool("bias", true, "learn an intercept b besides w"),
           opt_float("init", 0.0, "initial value of every weight (the bias starts at 0)")},
          [](const Config& cfg, const data::Dataset& train) {
            require_usage(train.is_regression(),
                          "model.name = linear is least-squares regression; this data has class "
                          "labels (use logreg or mlp, or data.task = regression for LIBSVM files)");
            return make_linear(train.dim, cfg.get_bool("model.bias"),
                               static_cast<float>(cfg.get_float("model.init")));
          }};
}

}  // namespace cohort::model
