// relu, tanh, dropout, group normalisation, flatten and linear layers (Note [Layer engine]).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "model/layer.h"

namespace cohort::model {
namespace {

class Pointwise final : public Layer {
 public:
  Pointwise(Shape in, Elementwise kind) : Layer(in), kind_(kind) {}
  std::string describe() const override { return kind_ == Elementwise::kRelu ? "relu" : "tanh"; }
  void forward(const float*, const float* x, std::int64_t n, float* y, const Pass&) override {
    const std::int64_t count = n * in_.size();
    if (kind_ == Elementwise::kRelu)
      for (std::int64_t i = 0; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    else
      for (std::int64_t i = 0; i < count; ++i) y[i] = std::tanh(x[i]);
  }
  void backward(const float*, const float*, const float* y, const float* dy, std::int64_t n, float*,
                float* dx) override {
    if (dx == nullptr) return;
    const std::int64_t count = n * in_.size();
    if (kind_ == Elementwise::kRelu)
      for (std::int64_t i = 0; i < count; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    else
      for (std::int64_t i = 0; i < count; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
  }

 private:
  Elementwise kind_;
};

// Inverted dropout: in training, each value is kept with probability 1 − p and scaled by
// 1 / (1 − p); one 32-bit draw per value, in storage order, decides (kept when the draw is at
// least p·2^32). Evaluation passes copy the input.
class Dropout final : public Layer {
 public:
  Dropout(Shape in, double p) : Layer(in), p_(p) {
    require_usage(p >= 0.0 && p < 1.0, fmt::format("dropout: p = {} must be in [0, 1)", p));
  }
  std::string describe() const override { return fmt::format("dropout {}", p_); }
  void forward(const float*, const float* x, std::int64_t n, float* y, const Pass& pass) override {
    const std::int64_t count = n * in_.size();
    training_ = pass.training() && p_ > 0.0;
    if (!training_) {
      std::copy_n(x, count, y);
      return;
    }
    const auto threshold = static_cast<std::uint64_t>(std::ldexp(p_, 32));
    const float scale = static_cast<float>(1.0 / (1.0 - p_));
    float* mask = mask_.reserve(count);
    for (std::int64_t i = 0; i < count; ++i) {
      mask[i] = pass.rng->next_u32() >= threshold ? scale : 0.0f;
      y[i] = x[i] * mask[i];
    }
  }
  void backward(const float*, const float*, const float*, const float* dy, std::int64_t n, float*,
                float* dx) override {
    if (dx == nullptr) return;
    const std::int64_t count = n * in_.size();
    if (!training_) {
      std::copy_n(dy, count, dx);
      return;
    }
    const float* mask = mask_.data();
    for (std::int64_t i = 0; i < count; ++i) dx[i] = dy[i] * mask[i];
  }

 private:
  double p_;
  bool training_ = false;
  detail::AlignedBuffer mask_;
};

// y = γ_c (x − μ_g) / sqrt(σ²_g + ε) + β_c, with μ_g and σ²_g the mean and (biased) variance of
// one sample's channels of group g over the whole image, ε = 1e-5. Sums in double, fixed order.
class GroupNorm final : public Layer {
 public:
  GroupNorm(Shape in, std::int64_t groups, bool affine)
      : Layer(in), groups_(groups), affine_(affine) {
    require_usage(groups >= 1 && in.channels % groups == 0,
                  fmt::format("groupnorm: {} groups do not divide {} channels (input {})", groups,
                              in.channels, shape_text(in)));
  }
  std::string param_stem() const override { return affine_ ? "gn" : ""; }
  std::string describe() const override {
    return fmt::format("groupnorm {} groups{}", groups_, affine_ ? "" : ", no affine");
  }
  void add_params(std::vector<LayerView>& layers, const std::string& prefix) override {
    offset_ = layers.empty() ? 0 : layers.back().offset + layers.back().size();
    if (!affine_) return;
    detail::add_layer(layers, prefix + ".gamma", in_.channels, 1);
    detail::add_layer(layers, prefix + ".beta", in_.channels, 1);
  }
  std::int64_t num_params() const override { return affine_ ? 2 * in_.channels : 0; }
  void init(float* params, Rng&) const override {
    if (!affine_) return;
    std::fill_n(params + offset_, in_.channels, 1.0f);
    std::fill_n(params + offset_ + in_.channels, in_.channels, 0.0f);
  }

  void forward(const float* params, const float* x, std::int64_t n, float* y,
               const Pass&) override {
    const std::int64_t m = group_size(), hw = in_.height * in_.width;
    stats_.resize(static_cast<std::size_t>(2 * n * groups_));
    for (std::int64_t q = 0; q < n * groups_; ++q) {
      const float* xs = x + q * m;
      double sum = 0.0;
      for (std::int64_t i = 0; i < m; ++i) sum += xs[i];
      const double mean = sum / static_cast<double>(m);
      double sq = 0.0;
      for (std::int64_t i = 0; i < m; ++i) sq += (xs[i] - mean) * (xs[i] - mean);
      const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(m) + kEps);
      stats_[2 * q] = mean;
      stats_[2 * q + 1] = rstd;
      const std::int64_t c0 = (q % groups_) * (in_.channels / groups_);
      for (std::int64_t i = 0; i < m; ++i) {
        const std::int64_t c = c0 + i / hw;
        const float xhat = static_cast<float>((xs[i] - mean) * rstd);
        y[q * m + i] = affine_ ? gamma(params)[c] * xhat + beta(params)[c] : xhat;
      }
    }
  }

  void backward(const float* params, const float* x, const float*, const float* dy, std::int64_t n,
                float* grad, float* dx) override {
    backward_pass(params, x, dy, n, grad, dx, nullptr);
  }
  // A sample's γ and β gradients are sums over its own groups only: kept per sample beside the
  // batch's sums.
  void example_sqnorms(const float* params, const float* x, const float*, const float* dy,
                       std::int64_t n, float* dx, double* sq) override {
    backward_pass(params, x, dy, n, nullptr, dx, sq);
  }
  double forward_flops() const override { return 8.0 * static_cast<double>(in_.size()); }

 private:
  // backward's pass: writes the parameter gradient into grad when it is not null, and adds each
  // sample's squared parameter-gradient norm to sq when that is not null.
  void backward_pass(const float* params, const float* x, const float* dy, std::int64_t n,
                     float* grad, float* dx, double* sq) {
    const std::int64_t m = group_size(), hw = in_.height * in_.width;
    std::vector<double> dgamma(static_cast<std::size_t>(in_.channels), 0.0),
        dbeta(static_cast<std::size_t>(in_.channels), 0.0);
    std::vector<double> sgamma, sbeta;  // one sample's
    if (sq != nullptr) {
      sgamma.assign(static_cast<std::size_t>(in_.channels), 0.0);
      sbeta.assign(static_cast<std::size_t>(in_.channels), 0.0);
    }
    for (std::int64_t q = 0; q < n * groups_; ++q) {
      const float* xs = x + q * m;
      const float* dys = dy + q * m;
      const double mean = stats_[2 * q], rstd = stats_[2 * q + 1];
      const std::int64_t c0 = (q % groups_) * (in_.channels / groups_);
      double sum1 = 0.0, sum2 = 0.0;  // Σ dx̂ and Σ dx̂·x̂ over the group
      for (std::int64_t i = 0; i < m; ++i) {
        const std::int64_t c = c0 + i / hw;
        const double xhat = (xs[i] - mean) * rstd;
        const double dxhat = affine_ ? static_cast<double>(dys[i]) * gamma(params)[c] : dys[i];
        sum1 += dxhat;
        sum2 += dxhat * xhat;
        dgamma[static_cast<std::size_t>(c)] += dys[i] * xhat;
        dbeta[static_cast<std::size_t>(c)] += dys[i];
        if (sq != nullptr && affine_) {
          sgamma[static_cast<std::size_t>(c)] += dys[i] * xhat;
          sbeta[static_cast<std::size_t>(c)] += dys[i];
        }
      }
      if (sq != nullptr && affine_ && q % groups_ == groups_ - 1) {  // the sample's last group
        double s2 = 0.0;
        for (std::int64_t ch = 0; ch < in_.channels; ++ch) {
          const auto k = static_cast<std::size_t>(ch);
          s2 += sgamma[k] * sgamma[k] + sbeta[k] * sbeta[k];
          sgamma[k] = sbeta[k] = 0.0;
        }
        sq[q / groups_] += s2;
      }
      if (dx == nullptr) continue;
      const double inv_m = 1.0 / static_cast<double>(m);
      for (std::int64_t i = 0; i < m; ++i) {
        const std::int64_t c = c0 + i / hw;
        const double xhat = (xs[i] - mean) * rstd;
        const double dxhat = affine_ ? static_cast<double>(dys[i]) * gamma(params)[c] : dys[i];
        dx[q * m + i] = static_cast<float>(rstd * (dxhat - sum1 * inv_m - xhat * sum2 * inv_m));
      }
    }
    if (!affine_ || grad == nullptr) return;
    for (std::int64_t c = 0; c < in_.channels; ++c) {
      grad[offset_ + c] = static_cast<float>(dgamma[static_cast<std::size_t>(c)]);
      grad[offset_ + in_.channels + c] = static_cast<float>(dbeta[static_cast<std::size_t>(c)]);
    }
  }

  static constexpr double kEps = 1e-5;
  std::int64_t group_size() const { return in_.size() / groups_; }
  const float* gamma(const float* params) const { return params + offset_; }
  const float* beta(const float* params) const { return params + offset_ + in_.channels; }

  std::int64_t groups_;
  bool affine_;
  std::vector<double> stats_;  // (mean, 1/std) per sample and group of the last forward
};

class Flatten final : public Layer {
 public:
  explicit Flatten(Shape in) : Layer(in) { out_ = Shape{in.size(), 1, 1}; }
  std::string describe() const override { return "flatten"; }
  void forward(const float*, const float* x, std::int64_t n, float* y, const Pass&) override {
    std::copy_n(x, n * in_.size(), y);
  }
  void backward(const float*, const float*, const float*, const float* dy, std::int64_t n, float*,
                float* dx) override {
    if (dx != nullptr) std::copy_n(dy, n * in_.size(), dx);
  }
};

class LinearLayer final : public Layer {
 public:
  LinearLayer(Shape in, std::int64_t out) : Layer(in) {
    require_usage(out >= 1, "linear: out must be at least 1");
    out_ = Shape{out, 1, 1};
  }
  std::string param_stem() const override { return "fc"; }
  std::string describe() const override {
    return fmt::format("linear {}→{}", in_.size(), out_.channels);
  }
  void add_params(std::vector<LayerView>& layers, const std::string& prefix) override {
    offset_ = layers.empty() ? 0 : layers.back().offset + layers.back().size();
    detail::add_layer(layers, prefix + ".w", out_.channels, in_.size());
    detail::add_layer(layers, prefix + ".b", out_.channels, 1);
  }
  std::int64_t num_params() const override { return out_.channels * (in_.size() + 1); }
  // Kaiming (He) uniform: U(−a, a), a = sqrt(6 / fan_in); bias 0.
  void init(float* params, Rng& rng) const override {
    const double a = std::sqrt(6.0 / static_cast<double>(in_.size()));
    float* w = params + offset_;
    for (std::int64_t i = 0; i < out_.channels * in_.size(); ++i)
      w[i] = static_cast<float>(rng.uniform(-a, a));
    std::fill_n(w + out_.channels * in_.size(), out_.channels, 0.0f);
  }
  void forward(const float* params, const float* x, std::int64_t n, float* y,
               const Pass&) override {
    const float* w = params + offset_;
    detail::dense_forward(w, w + out_.channels * in_.size(), out_.channels, in_.size(), x, n, y);
  }
  void backward(const float* params, const float* x, const float*, const float* dy, std::int64_t n,
                float* grad, float* dx) override {
    const std::int64_t o = out_.channels, f = in_.size();
    detail::dense_backward(params + offset_, o, f, x, dy, n, grad + offset_, grad + offset_ + o * f,
                           dx);
  }
  // |dy_s x_s^T|^2 + |dy_s|^2 = |dy_s|^2 (|x_s|^2 + 1).
  void example_sqnorms(const float* params, const float* x, const float*, const float* dy,
                       std::int64_t n, float* dx, double* sq) override {
    const std::int64_t o = out_.channels, f = in_.size();
    part_.resize(2 * static_cast<std::size_t>(n));
    detail::row_sqnorms(dy, n, o, part_.data());
    detail::row_sqnorms(x, n, f, part_.data() + n);
    for (std::int64_t s = 0; s < n; ++s) sq[s] += part_[s] * (part_[n + s] + 1.0);
    if (dx != nullptr) detail::gemm(false, false, n, f, o, dy, params + offset_, false, dx);
  }
  double forward_flops() const override {
    return 2.0 * static_cast<double>(out_.channels * in_.size());
  }
  double backward_flops(bool with_dx) const override {
    return forward_flops() * (with_dx ? 2.0 : 1.0);
  }

 private:
  std::vector<double> part_;  // example_sqnorms' |dy_s|^2 and |x_s|^2
};

}  // namespace

std::unique_ptr<Layer> make_activation(Shape in, Elementwise kind) {
  return std::make_unique<Pointwise>(in, kind);
}
std::unique_ptr<Layer> make_dropout(Shape in, double p) { return std::make_unique<Dropout>(in, p); }
std::unique_ptr<Layer> make_group_norm(Shape in, std::int64_t groups, bool affine) {
  return std::make_unique<GroupNorm>(in, groups, affine);
}
std::unique_ptr<Layer> make_flatten(Shape in) { return std::make_unique<Flatten>(in); }
std::unique_ptr<Layer> make_linear_layer(Shape in, std::int64_t out) {
  return std::make_unique<LinearLayer>(in, out);
}

}  // namespace cohort::model
