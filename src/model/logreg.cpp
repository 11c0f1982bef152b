#include "model/logreg.h"

#include <algorithm>
#include <memory>

#include "core/errors.h"

namespace cohort::model {

LogReg::LogReg(std::int64_t input_dim, int num_classes)
    : input_dim_(input_dim), num_classes_(num_classes) {
  require_usage(input_dim > 0,
                "logreg: input dimension must be positive, got " + std::to_string(input_dim));
  require_usage(num_classes >= 2,
                "logreg: needs at least 2 classes, got " + std::to_string(num_classes));
  detail::add_layer(layers_, "w", num_classes, input_dim);
  detail::add_layer(layers_, "b", num_classes, 1);
}

void LogReg::init(float* params, Rng& /*rng*/) const { std::fill_n(params, num_params(), 0.0f); }

double LogReg::loss_grad(const float* params, const Batch& batch, float* grad, Rng*) const {
  detail::check_batch(batch, input_dim_, /*classification=*/true, "logreg");
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    if (grad != nullptr) std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const LayerView& w = layers_[0];
  const LayerView& b = layers_[1];
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const float* x = detail::stage_in(batch.x, rows * input_dim_, x_in_);
  float* z = logits_.reserve(rows * num_classes_);
  detail::dense_forward(p + w.offset, p + b.offset, num_classes_, input_dim_, x, rows, z);
  // With a gradient wanted, z becomes d(mean loss)/dz.
  const double loss_sum =
      detail::softmax_cross_entropy(z, rows, num_classes_, batch.labels, nullptr, grad != nullptr,
                                    1.0f / static_cast<float>(rows));
  if (grad != nullptr) {
    float* g = detail::stage_out(grad, num_params(), grad_out_);
    detail::dense_backward(p + w.offset, num_classes_, input_dim_, x, z, rows, g + w.offset,
                           g + b.offset, nullptr);
    detail::finish_out(g, grad, num_params());
  }
  return loss_sum / static_cast<double>(rows);
}

// Note [Per-example clipping]: example n's gradient is (d_n x_n^T, d_n) with d_n = dL_n/dz_n, so
// |g_n|^2 = |d_n|^2 (|x_n|^2 + 1).
double LogReg::clipped_loss_grad(const float* params, const Batch& batch, double clip,
                                 double denominator, float* grad, Rng*, double* norms) const {
  detail::check_batch(batch, input_dim_, /*classification=*/true, "logreg");
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const LayerView& w = layers_[0];
  const LayerView& b = layers_[1];
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const float* x = detail::stage_in(batch.x, rows * input_dim_, x_in_);
  float* z = logits_.reserve(rows * num_classes_);
  detail::dense_forward(p + w.offset, p + b.offset, num_classes_, input_dim_, x, rows, z);
  float* d = dlogits_.reserve(rows * num_classes_);
  std::copy_n(z, rows * num_classes_, d);
  const double loss_sum = detail::softmax_cross_entropy(d, rows, num_classes_, batch.labels,
                                                        nullptr, true, 1.0f);
  sq_.resize(static_cast<std::size_t>(rows));
  xsq_.resize(static_cast<std::size_t>(rows));
  detail::row_sqnorms(d, rows, num_classes_, sq_.data());
  detail::row_sqnorms(x, rows, input_dim_, xsq_.data());
  for (std::int64_t i = 0; i < rows; ++i) sq_[i] *= xsq_[i] + 1.0;
  detail::clipped_softmax_grad(z, rows, num_classes_, batch.labels, sq_.data(), clip, denominator,
                               norms);
  float* g = detail::stage_out(grad, num_params(), grad_out_);
  detail::dense_backward(p + w.offset, num_classes_, input_dim_, x, z, rows, g + w.offset,
                         g + b.offset, nullptr);
  detail::finish_out(g, grad, num_params());
  return loss_sum / static_cast<double>(rows);
}

void LogReg::evaluate(const float* params, const Batch& batch, double* loss_sum,
                      std::int64_t* correct) const {
  detail::check_batch(batch, input_dim_, /*classification=*/true, "logreg");
  *loss_sum = 0.0;
  *correct = 0;
  if (batch.rows == 0) return;
  const LayerView& w = layers_[0];
  const LayerView& b = layers_[1];
  const float* p = detail::stage_in(params, num_params(), params_in_);
  for (std::int64_t start = 0; start < batch.rows; start += detail::kEvalChunkRows) {
    const std::int64_t rows = std::min(detail::kEvalChunkRows, batch.rows - start);
    const float* x = detail::stage_in(batch.x + start * input_dim_, rows * input_dim_, x_in_);
    float* z = logits_.reserve(rows * num_classes_);
    detail::dense_forward(p + w.offset, p + b.offset, num_classes_, input_dim_, x, rows, z);
    *loss_sum += detail::softmax_cross_entropy(z, rows, num_classes_, batch.labels + start, correct,
                                               /*write_grad=*/false, 0.0f);
  }
}

std::unique_ptr<Model> make_logreg(std::int64_t input_dim, int num_classes) {
  return std::make_unique<LogReg>(input_dim, num_classes);
}

ModelRegistration logreg_registration() {
  return {"logreg",
          "multinomial logistic regression, softmax cross-entropy",
          {},
          [](const Config&, const data::Dataset& train) {
            require_class_labels("logreg", train);
            return make_logreg(train.dim, train.num_classes);
          }};
}

}  // namespace cohort::model
