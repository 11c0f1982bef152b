#include "model/mlp.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/errors.h"

namespace cohort::model {
namespace {

// a = f(a), element-wise over n values.
void activate(Activation activation, float* a, std::int64_t n) {
  auto v = detail::VectorView(a, n).array();
  switch (activation) {
    case Activation::kRelu:
      v = v.max(0.0f);
      break;
    case Activation::kTanh:
      v = v.tanh();
      break;
    case Activation::kSigmoid:
      v = v.logistic();
      break;
  }
}

// Turns a = f(z) into dL/dz = dL/da * f'(z), with f' written through a; da holds dL/da.
void activation_backward(Activation activation, const float* da, float* a, std::int64_t n) {
  auto v = detail::VectorView(a, n).array();
  const auto d = detail::ConstVectorView(da, n).array();
  switch (activation) {
    case Activation::kRelu:
      v = (v > 0.0f).select(d, 0.0f);
      break;
    case Activation::kTanh:
      v = d * (1.0f - v.square());
      break;
    case Activation::kSigmoid:
      v = d * v * (1.0f - v);
      break;
  }
}

}  // namespace

Mlp::Mlp(std::int64_t input_dim, int num_classes, const std::vector<int>& hidden,
         Activation activation)
    : activation_(activation) {
  require_usage(input_dim > 0,
                "mlp: input dimension must be positive, got " + std::to_string(input_dim));
  require_usage(num_classes >= 2,
                "mlp: needs at least 2 classes, got " + std::to_string(num_classes));
  widths_.push_back(input_dim);
  for (const int h : hidden) {
    require_usage(h > 0, "mlp: hidden layer sizes must be positive, got " + std::to_string(h));
    widths_.push_back(h);
  }
  widths_.push_back(num_classes);
  for (std::size_t l = 0; l < num_dense(); ++l) {
    const std::string prefix = l + 1 < num_dense() ? "fc" + std::to_string(l + 1) : "out";
    detail::add_layer(layers_, prefix + ".w", widths_[l + 1], widths_[l]);
    detail::add_layer(layers_, prefix + ".b", widths_[l + 1], 1);
  }
  acts_.resize(num_dense());
}

void Mlp::init(float* params, Rng& rng) const {
  for (std::size_t l = 0; l < num_dense(); ++l) {
    const LayerView& w = layers_[2 * l];
    const LayerView& b = layers_[2 * l + 1];
    const double fan_in = static_cast<double>(w.cols), fan_out = static_cast<double>(w.rows);
    const double a = activation_ == Activation::kRelu ? std::sqrt(6.0 / fan_in)
                                                      : std::sqrt(6.0 / (fan_in + fan_out));
    for (std::int64_t i = 0; i < w.size(); ++i)
      params[w.offset + i] = static_cast<float>(rng.uniform(-a, a));
    std::fill_n(params + b.offset, b.size(), 0.0f);
  }
}

float* Mlp::forward(const float* p, const float* x, std::int64_t rows) const {
  const float* in = x;
  for (std::size_t l = 0; l < num_dense(); ++l) {
    const std::int64_t out = widths_[l + 1];
    float* z = acts_[l].reserve(rows * out);
    detail::dense_forward(p + layers_[2 * l].offset, p + layers_[2 * l + 1].offset, out, widths_[l],
                          in, rows, z);
    if (l + 1 < num_dense()) activate(activation_, z, rows * out);
    in = z;
  }
  return acts_.back().data();
}

double Mlp::loss_grad(const float* params, const Batch& batch, float* grad, Rng*) const {
  detail::check_batch(batch, widths_.front(), /*classification=*/true, "mlp");
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    if (grad != nullptr) std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const float* x = detail::stage_in(batch.x, rows * widths_.front(), x_in_);
  float* logits = forward(p, x, rows);
  // With a gradient wanted, the logits become d(mean loss)/dz of the output layer.
  const double loss_sum =
      detail::softmax_cross_entropy(logits, rows, static_cast<int>(widths_.back()), batch.labels,
                                    nullptr, grad != nullptr, 1.0f / static_cast<float>(rows));
  if (grad != nullptr) {
    float* g = detail::stage_out(grad, num_params(), grad_out_);
    backward(p, x, rows, g);
    detail::finish_out(g, grad, num_params());
  }
  return loss_sum / static_cast<double>(rows);
}

void Mlp::backward(const float* p, const float* x, std::int64_t rows, float* g) const {
  // acts_[l] holds dL/dz of layer l when layer l is reached; the activations it held before
  // are consumed by layer l + 1's weight gradient first.
  for (std::size_t l = num_dense(); l-- > 0;) {
    const LayerView& w = layers_[2 * l];
    const LayerView& b = layers_[2 * l + 1];
    const float* in = l == 0 ? x : acts_[l - 1].data();
    float* d_in = l == 0 ? nullptr : delta_.reserve(rows * widths_[l]);
    detail::dense_backward(p + w.offset, widths_[l + 1], widths_[l], in, acts_[l].data(), rows,
                           g + w.offset, g + b.offset, d_in);
    if (l > 0) activation_backward(activation_, d_in, acts_[l - 1].data(), rows * widths_[l]);
  }
}

// Note [Per-example clipping]: layer l's part of example n's gradient is (d_n a_n^T, d_n), with
// a_n its input and d_n = dL_n/dz_n, so |g_n|^2 = sum over layers of |d_n|^2 (|a_n|^2 + 1). The
// deltas of every example come from one batched backward pass (d_{l-1} = (d_l W_l) f'(z_{l-1}),
// one product per layer) into buffers of their own, which leaves the activations for the second,
// reweighted backward pass.
double Mlp::clipped_loss_grad(const float* params, const Batch& batch, double clip,
                              double denominator, float* grad, Rng*, double* norms) const {
  detail::check_batch(batch, widths_.front(), /*classification=*/true, "mlp");
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const int classes = static_cast<int>(widths_.back());
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const float* x = detail::stage_in(batch.x, rows * widths_.front(), x_in_);
  float* logits = forward(p, x, rows);
  float* d = norm_delta_[0].reserve(rows * classes);
  std::copy_n(logits, rows * classes, d);
  const double loss_sum =
      detail::softmax_cross_entropy(d, rows, classes, batch.labels, nullptr, true, 1.0f);
  sq_.assign(static_cast<std::size_t>(rows), 0.0);
  part_.resize(2 * static_cast<std::size_t>(rows));
  double* dsq = part_.data();
  double* asq = part_.data() + rows;
  for (std::size_t l = num_dense(); l-- > 0;) {
    const std::int64_t out = widths_[l + 1], in = widths_[l];
    const float* a = l == 0 ? x : acts_[l - 1].data();
    detail::row_sqnorms(d, rows, out, dsq);
    detail::row_sqnorms(a, rows, in, asq);
    for (std::int64_t i = 0; i < rows; ++i) sq_[i] += dsq[i] * (asq[i] + 1.0);
    if (l == 0) break;
    float* next = norm_delta_[(num_dense() - l) % 2].reserve(rows * in);
    detail::gemm(false, false, rows, in, out, d, p + layers_[2 * l].offset, false, next);
    auto v = detail::VectorView(next, rows * in).array();
    const auto act = detail::ConstVectorView(a, rows * in).array();
    switch (activation_) {
      case Activation::kRelu:
        v = (act > 0.0f).select(v, 0.0f);
        break;
      case Activation::kTanh:
        v = v * (1.0f - act.square());
        break;
      case Activation::kSigmoid:
        v = v * act * (1.0f - act);
        break;
    }
    d = next;
  }
  detail::clipped_softmax_grad(logits, rows, classes, batch.labels, sq_.data(), clip, denominator,
                               norms);
  float* g = detail::stage_out(grad, num_params(), grad_out_);
  backward(p, x, rows, g);
  detail::finish_out(g, grad, num_params());
  return loss_sum / static_cast<double>(rows);
}

void Mlp::evaluate(const float* params, const Batch& batch, double* loss_sum,
                   std::int64_t* correct) const {
  detail::check_batch(batch, widths_.front(), /*classification=*/true, "mlp");
  *loss_sum = 0.0;
  *correct = 0;
  if (batch.rows == 0) return;
  const std::int64_t dim = widths_.front();
  const float* p = detail::stage_in(params, num_params(), params_in_);
  for (std::int64_t start = 0; start < batch.rows; start += detail::kEvalChunkRows) {
    const std::int64_t rows = std::min(detail::kEvalChunkRows, batch.rows - start);
    const float* x = detail::stage_in(batch.x + start * dim, rows * dim, x_in_);
    float* logits = forward(p, x, rows);
    *loss_sum += detail::softmax_cross_entropy(logits, rows, static_cast<int>(widths_.back()),
                                               batch.labels + start, correct,
                                               /*write_grad=*/false, 0.0f);
  }
}

std::unique_ptr<Model> make_mlp(std::int64_t input_dim, int num_classes,
                                const std::vector<int>& hidden, Activation activation) {
  return std::make_unique<Mlp>(input_dim, num_classes, hidden, activation);
}

ModelRegistration mlp_registration() {
  return {"mlp",
          "fully connected network, softmax cross-entropy",
          {opt_int_list("hidden", "[200]", "hidden layer sizes", 1),
           opt_enum("activation", "relu", {"relu", "tanh", "sigmoid"}, "hidden activation")},
          [](const Config& cfg, const data::Dataset& train) {
            require_class_labels("mlp", train);
            std::vector<int> hidden;
            for (long long h : cfg.get_int_list("model.hidden"))
              hidden.push_back(static_cast<int>(h));
            require_usage(!hidden.empty(),
                          "model.hidden must list at least one layer size, e.g. [200]");
            const std::string act = cfg.get_string("model.activation");
            const auto a = act == "relu"   ? Activation::kRelu
                           : act == "tanh" ? Activation::kTanh
                                           : Activation::kSigmoid;
            return make_mlp(train.dim, train.num_classes, hidden, a);
          }};
}

}  // namespace cohort::model
