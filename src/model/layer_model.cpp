#include "model/layer_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/errors.h"
#include "core/limits.h"

namespace cohort::model {
namespace {

// A pass works through at most this many rows at a time (a training batch, a test set):
// convolutional activations are some hundred thousand floats per sample, so memory stays bounded
// whatever the batch size. A training batch of more rows adds the chunks' gradients in order.
constexpr std::int64_t kChunkRows = 32;

}  // namespace

LayerModel::LayerModel(std::string name, Shape input, int classes, Stack stack)
    : name_(std::move(name)), input_(input), classes_(classes), stack_(std::move(stack)) {
  require_usage(!stack_.empty(), "model.name = " + name_ + ": no layers");
  require_usage(stack_.layers().front()->in_shape() == input,
                fmt::format("model.name = {}: the first layer takes {}, the data gives {}", name_,
                            shape_text(stack_.layers().front()->in_shape()), shape_text(input)));
  const Shape out = stack_.out_shape(input);
  require_usage(out.flat() && out.channels == classes,
                fmt::format("model.name = {}: the last layer gives {} values ({}), the data has {} "
                            "classes; end with {{type: linear, out: {}}}",
                            name_, out.size(), shape_text(out), classes, classes));
  stack_.add_params(layers_, "");
  // The activations of a chunk are allocated on the first pass: checked here (Note [Input
  // sizes]; the parameters are checked with the run's memory estimate).
  const double bytes = stack_.sample_floats() * sizeof(float) * static_cast<double>(kChunkRows);
  require_memory(bytes < 0x1p62 ? static_cast<std::int64_t>(bytes) : std::int64_t{1} << 62,
                 fmt::format("model.name = {}: the activations of {} samples", name_, kChunkRows));
}

void LayerModel::init(float* params, Rng& rng) const { stack_.init(params, rng); }

void LayerModel::check(const Batch& batch) const {
  detail::check_batch(batch, input_.size(), /*classification=*/true, name_.c_str());
  if (batch.shape.channels != 0 && !(batch.shape == input_))
    throw std::invalid_argument(fmt::format("{}: batch samples are {}, the model takes {}", name_,
                                            shape_text(batch.shape), shape_text(input_)));
}

double LayerModel::loss_grad(const float* params, const Batch& batch, float* grad, Rng* rng) const {
  check(batch);
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    if (grad != nullptr) std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const std::int64_t dim = input_.size(), n_params = num_params();
  float* g = grad == nullptr ? nullptr : detail::stage_out(grad, n_params, grad_out_);
  const float scale = 1.0f / static_cast<float>(rows);  // d(mean loss) / d(sample loss)
  double loss_sum = 0.0;
  for (std::int64_t start = 0; start < rows; start += kChunkRows) {
    const std::int64_t n = std::min(kChunkRows, rows - start);
    const float* x = detail::stage_in(batch.x + start * dim, n * dim, x_in_);
    const float* logits = stack_.forward(p, x, n, Pass{rng});
    float* dl = dlogits_.reserve(n * classes_);
    std::copy_n(logits, n * classes_, dl);
    loss_sum += detail::softmax_cross_entropy(dl, n, classes_, batch.labels + start, nullptr,
                                              g != nullptr, scale);
    if (g == nullptr) continue;
    backward_chunk(p, x, dl, n, start == 0, g);
  }
  if (g != nullptr) detail::finish_out(g, grad, n_params);
  return loss_sum / static_cast<double>(rows);
}

// Note [Per-example clipping]: per chunk, one forward pass (dropout masks drawn once, as in
// loss_grad), the per-example norms by Stack::example_sqnorms from the unscaled output gradients,
// then loss_grad's backward with each example's output gradient scaled by c_n / denominator.
double LayerModel::clipped_loss_grad(const float* params, const Batch& batch, double clip,
                                     double denominator, float* grad, Rng* rng,
                                     double* norms) const {
  check(batch);
  const std::int64_t rows = batch.rows;
  if (rows == 0) {
    std::fill_n(grad, num_params(), 0.0f);
    return 0.0;
  }
  const float* p = detail::stage_in(params, num_params(), params_in_);
  const std::int64_t dim = input_.size(), n_params = num_params();
  float* g = detail::stage_out(grad, n_params, grad_out_);
  double loss_sum = 0.0;
  for (std::int64_t start = 0; start < rows; start += kChunkRows) {
    const std::int64_t n = std::min(kChunkRows, rows - start);
    const float* x = detail::stage_in(batch.x + start * dim, n * dim, x_in_);
    const float* logits = stack_.forward(p, x, n, Pass{rng});
    float* d = dnorm_.reserve(n * classes_);
    std::copy_n(logits, n * classes_, d);
    loss_sum += detail::softmax_cross_entropy(d, n, classes_, batch.labels + start, nullptr, true,
                                              1.0f);
    sq_.assign(static_cast<std::size_t>(n), 0.0);
    stack_.example_sqnorms(p, x, d, n, nullptr, sq_.data());
    float* dl = dlogits_.reserve(n * classes_);
    std::copy_n(logits, n * classes_, dl);
    detail::clipped_softmax_grad(dl, n, classes_, batch.labels + start, sq_.data(), clip,
                                 denominator, norms == nullptr ? nullptr : norms + start);
    backward_chunk(p, x, dl, n, start == 0, g);
  }
  detail::finish_out(g, grad, n_params);
  return loss_sum / static_cast<double>(rows);
}

void LayerModel::backward_chunk(const float* p, const float* x, const float* dl, std::int64_t n,
                                bool first, float* g) const {
  if (first) {
    stack_.backward(p, x, dl, n, g, nullptr);
    return;
  }
  const std::int64_t n_params = num_params();
  float* part = grad_part_.reserve(n_params);
  stack_.backward(p, x, dl, n, part, nullptr);
  for (std::int64_t i = 0; i < n_params; ++i) g[i] += part[i];
}

void LayerModel::evaluate(const float* params, const Batch& batch, double* loss_sum,
                          std::int64_t* correct) const {
  check(batch);
  *loss_sum = 0.0;
  *correct = 0;
  if (batch.rows == 0) return;
  const std::int64_t dim = input_.size();
  const float* p = detail::stage_in(params, num_params(), params_in_);
  for (std::int64_t start = 0; start < batch.rows; start += kChunkRows) {
    const std::int64_t rows = std::min(kChunkRows, batch.rows - start);
    const float* x = detail::stage_in(batch.x + start * dim, rows * dim, x_in_);
    const float* logits = stack_.forward(p, x, rows, Pass{});
    float* z = dlogits_.reserve(rows * classes_);
    std::copy_n(logits, rows * classes_, z);
    *loss_sum += detail::softmax_cross_entropy(z, rows, classes_, batch.labels + start, correct,
                                               /*write_grad=*/false, 0.0f);
  }
}

std::string LayerModel::summary() const {
  std::string out;
  for (const auto& line : stack_.summary("  ")) out += line + "\n";
  out += fmt::format("  {}: {} parameters, {:.3g} MFLOP per sample forward\n", name_, num_params(),
                     forward_flops() / 1e6);
  return out;
}

}  // namespace cohort::model
