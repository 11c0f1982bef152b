// Stacks of layers and the residual block (Note [Layer engine]).
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "core/errors.h"
#include "model/layer.h"

namespace cohort::model {

std::string shape_text(const Shape& s) {
  if (s.flat()) return std::to_string(s.channels);
  return fmt::format("{}×{}×{}", s.height, s.width, s.channels);
}

namespace {

// "18,496"
std::string grouped(std::int64_t v) {
  std::string digits = std::to_string(v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

void Stack::push(std::unique_ptr<Layer> layer) {
  if (!layers_.empty() && !(layers_.back()->out_shape() == layer->in_shape()))
    throw std::logic_error("layer stack: " + layer->describe() + " does not take " +
                           shape_text(layers_.back()->out_shape()));
  layers_.push_back(std::move(layer));
  outs_.resize(layers_.size());
}

void Stack::add_params(std::vector<LayerView>& layers, const std::string& prefix) {
  // Layers are named by stem and position among those of the same stem: conv1, conv2, gn1, fc1,
  // block1.conv1...
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& l : layers_) {
    const std::string stem = l->param_stem();
    if (stem.empty()) continue;
    auto it =
        std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == stem; });
    if (it == counts.end()) it = counts.insert(counts.end(), {stem, 0});
    const std::string name = stem + std::to_string(++it->second);
    l->add_params(layers, prefix.empty() ? name : prefix + "." + name);
  }
}

std::int64_t Stack::num_params() const {
  std::int64_t n = 0;
  for (const auto& l : layers_) n += l->num_params();
  return n;
}

void Stack::init(float* params, Rng& rng) const {
  for (const auto& l : layers_) l->init(params, rng);
}

const float* Stack::forward(const float* params, const float* x, std::int64_t n, const Pass& pass) {
  const float* in = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    float* out = outs_[i].reserve(n * layers_[i]->out_shape().size());
    layers_[i]->forward(params, in, n, out, pass);
    in = out;
  }
  return in;
}

void Stack::backward(const float* params, const float* x, const float* dy, std::int64_t n,
                     float* grad, float* dx) {
  if (layers_.empty()) return;  // an identity: the caller uses dy itself
  const float* d = dy;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const float* in = i == 0 ? x : outs_[i - 1].data();
    float* d_in = i == 0 ? dx : delta_[i % 2].reserve(n * layers_[i]->in_shape().size());
    layers_[i]->backward(params, in, outs_[i].data(), d, n, grad, d_in);
    d = d_in;
  }
}

void Stack::example_sqnorms(const float* params, const float* x, const float* dy, std::int64_t n,
                            float* dx, double* sq) {
  if (layers_.empty()) return;
  const float* d = dy;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const float* in = i == 0 ? x : outs_[i - 1].data();
    float* d_in = i == 0 ? dx : delta_[i % 2].reserve(n * layers_[i]->in_shape().size());
    layers_[i]->example_sqnorms(params, in, outs_[i].data(), d, n, d_in, sq);
    d = d_in;
  }
}

void Layer::example_sqnorms(const float* params, const float* x, const float* y, const float* dy,
                            std::int64_t n, float* dx, double*) {
  if (num_params() != 0)
    throw std::logic_error("layer " + describe() + " has parameters but no per-example norms");
  backward(params, x, y, dy, n, nullptr, dx);
}

double Stack::forward_flops() const {
  double f = 0.0;
  for (const auto& l : layers_) f += l->forward_flops();
  return f;
}

double Stack::backward_flops(bool with_dx) const {
  double f = 0.0;
  for (std::size_t i = 0; i < layers_.size(); ++i)
    f += layers_[i]->backward_flops(i > 0 || with_dx);
  return f;
}

double Stack::sample_floats() const {
  double f = 0.0;
  for (const auto& l : layers_)
    f += 2.0 * static_cast<double>(l->out_shape().size()) + l->scratch_floats();
  return f;
}

std::vector<std::string> Stack::summary(const std::string& indent) const {
  std::vector<std::string> lines;
  for (const auto& l : layers_) {
    lines.push_back(fmt::format("{}{}: {} → {}, {} params", indent, l->describe(),
                                shape_text(l->in_shape()), shape_text(l->out_shape()),
                                grouped(l->num_params())));
    for (auto& inner : l->inner_summary()) lines.push_back(indent + "  " + inner);
  }
  return lines;
}

namespace {

// y = relu(main(x) + shortcut(x)), the shortcut being x itself when it is empty.
class Residual final : public Layer {
 public:
  Residual(Shape in, std::int64_t out, std::int64_t stride, std::int64_t groups)
      : Layer(in), stride_(stride), groups_(groups) {
    require_usage(out >= 1 && stride >= 1 && groups >= 1,
                  "residual needs out >= 1, stride >= 1 and groups >= 1");
    main_.push(make_conv2d(in, out, 3, stride, 1, /*bias=*/false));
    main_.push(make_group_norm(main_.out_shape(in), groups, true));
    main_.push(make_activation(main_.out_shape(in), Elementwise::kRelu));
    main_.push(make_conv2d(main_.out_shape(in), out, 3, 1, 1, false));
    main_.push(make_group_norm(main_.out_shape(in), groups, true));
    if (stride != 1 || out != in.channels) {
      shortcut_.push(make_conv2d(in, out, 1, stride, 0, false));
      shortcut_.push(make_group_norm(shortcut_.out_shape(in), groups, true));
    }
    out_ = main_.out_shape(in);
    if (!(shortcut_.out_shape(in) == out_))
      throw UsageError(fmt::format("residual: the shortcut gives {} but the block {}",
                                   shape_text(shortcut_.out_shape(in)), shape_text(out_)));
  }
  std::string param_stem() const override { return "block"; }
  std::string describe() const override {
    return fmt::format("residual {}→{}{} (groupnorm {})", in_.channels, out_.channels,
                       stride_ > 1 ? fmt::format(" /{}", stride_) : "", groups_);
  }
  void add_params(std::vector<LayerView>& layers, const std::string& prefix) override {
    main_.add_params(layers, prefix);
    shortcut_.add_params(layers, prefix + ".shortcut");
  }
  std::int64_t num_params() const override { return main_.num_params() + shortcut_.num_params(); }
  void init(float* params, Rng& rng) const override {
    main_.init(params, rng);
    shortcut_.init(params, rng);
  }
  void forward(const float* params, const float* x, std::int64_t n, float* y,
               const Pass& pass) override {
    const float* a = main_.forward(params, x, n, pass);
    const float* s = shortcut_.forward(params, x, n, pass);
    for (std::int64_t i = 0; i < n * out_.size(); ++i) {
      const float z = a[i] + s[i];
      y[i] = z > 0.0f ? z : 0.0f;
    }
  }
  void backward(const float* params, const float* x, const float* y, const float* dy,
                std::int64_t n, float* grad, float* dx) override {
    through(y, dy, n, dx, [&](Stack& stack, const float* dz, float* d) {
      stack.backward(params, x, dz, n, grad, d);
    });
  }
  void example_sqnorms(const float* params, const float* x, const float* y, const float* dy,
                       std::int64_t n, float* dx, double* sq) override {
    through(y, dy, n, dx, [&](Stack& stack, const float* dz, float* d) {
      stack.example_sqnorms(params, x, dz, n, d, sq);
    });
  }
  double forward_flops() const override {
    return main_.forward_flops() + shortcut_.forward_flops();
  }
  double backward_flops(bool with_dx) const override {
    return main_.backward_flops(with_dx) + shortcut_.backward_flops(with_dx);
  }
  double scratch_floats() const override {
    return main_.sample_floats() + shortcut_.sample_floats() + 2.0 * in_.size();
  }
  std::vector<std::string> inner_summary() const override {
    auto lines = main_.summary("");
    for (auto& l : shortcut_.summary("shortcut ")) lines.push_back(std::move(l));
    return lines;
  }

 private:
  // The backward pass through the relu, then pass(stack, dz, dx) on the main path and the
  // shortcut, adding their dx.
  template <class Fn>
  void through(const float* y, const float* dy, std::int64_t n, float* dx, Fn&& pass) {
    const std::int64_t count = n * out_.size();
    float* dz = dz_.reserve(count);
    for (std::int64_t i = 0; i < count; ++i) dz[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    pass(main_, dz, dx);
    if (shortcut_.empty()) {
      if (dx != nullptr)
        for (std::int64_t i = 0; i < count; ++i) dx[i] += dz[i];
      return;
    }
    float* ds = dx == nullptr ? nullptr : dshort_.reserve(n * in_.size());
    pass(shortcut_, dz, ds);
    if (dx != nullptr)
      for (std::int64_t i = 0; i < n * in_.size(); ++i) dx[i] += ds[i];
  }

  std::int64_t stride_, groups_;
  Stack main_, shortcut_;
  detail::AlignedBuffer dz_, dshort_;
};

}  // namespace

std::unique_ptr<Layer> make_residual(Shape in, std::int64_t out_channels, std::int64_t stride,
                                     std::int64_t groups) {
  return std::make_unique<Residual>(in, out_channels, stride, groups);
}

}  // namespace cohort::model
