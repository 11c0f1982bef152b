// conv2d (im2col + GEMM), max and average pooling, global average pooling (Note [Layer engine]).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "core/errors.h"
#include "model/layer.h"

namespace cohort::model {
namespace {

// Output size of a window of `kernel` moved by `stride` over `size` values padded by `padding`
// on each side; UsageError when the window does not fit once.
std::int64_t window_out(std::int64_t size, std::int64_t kernel, std::int64_t stride,
                        std::int64_t padding, const std::string& what, const Shape& in) {
  const std::int64_t span = size + 2 * padding - kernel;
  if (span < 0)
    throw UsageError(fmt::format("{} does not fit input {}: ({} + 2·{} − {})/{} + 1 < 1", what,
                                 shape_text(in), size, padding, kernel, stride));
  return span / stride + 1;
}

class Conv2d final : public Layer {
 public:
  Conv2d(Shape in, std::int64_t out, std::int64_t k, std::int64_t stride, std::int64_t padding,
         bool bias)
      : Layer(in), k_(k), stride_(stride), pad_(padding), bias_(bias) {
    require_usage(k >= 1 && stride >= 1 && padding >= 0 && out >= 1,
                  "conv2d needs out >= 1, kernel >= 1, stride >= 1 and padding >= 0");
    const std::int64_t ho = window_out(in.height, k, stride, padding, describe_for(out), in);
    const std::int64_t wo = window_out(in.width, k, stride, padding, describe_for(out), in);
    out_ = Shape{out, ho, wo};
    checked_mul(checked_mul(in.channels, k * k, "conv2d kernel"), out, "conv2d kernel");
  }

  std::string param_stem() const override { return "conv"; }
  std::string describe() const override { return describe_for(out_.channels); }
  void add_params(std::vector<LayerView>& layers, const std::string& prefix) override {
    offset_ = layers.empty() ? 0 : layers.back().offset + layers.back().size();
    detail::add_layer(layers, prefix + ".w", out_.channels, cols());
    if (bias_) detail::add_layer(layers, prefix + ".b", out_.channels, 1);
  }
  std::int64_t num_params() const override {
    return out_.channels * cols() + (bias_ ? out_.channels : 0);
  }
  // Kaiming (He) uniform: U(−a, a), a = sqrt(6 / fan_in), fan_in = in·k·k; bias 0.
  void init(float* params, Rng& rng) const override {
    const double a = std::sqrt(6.0 / static_cast<double>(cols()));
    float* w = params + offset_;
    for (std::int64_t i = 0; i < out_.channels * cols(); ++i)
      w[i] = static_cast<float>(rng.uniform(-a, a));
    if (bias_) std::fill_n(w + out_.channels * cols(), out_.channels, 0.0f);
  }

  void forward(const float* params, const float* x, std::int64_t n, float* y,
               const Pass&) override {
    const float* w = params + offset_;
    const std::int64_t o = out_.channels, kk = cols(), p = out_.height * out_.width;
    for (std::int64_t s = 0; s < n; ++s) {
      const float* col = im2col(x + s * in_.size());
      detail::gemm(false, false, o, p, kk, w, col, false, y + s * out_.size());
      if (bias_) {
        const float* b = w + o * kk;
        for (std::int64_t c = 0; c < o; ++c) {
          float* row = y + s * out_.size() + c * p;
          for (std::int64_t j = 0; j < p; ++j) row[j] += b[c];
        }
      }
    }
  }

  void backward(const float* params, const float* x, const float*, const float* dy, std::int64_t n,
                float* grad, float* dx) override {
    const float* w = params + offset_;
    const std::int64_t o = out_.channels, kk = cols(), p = out_.height * out_.width;
    detail::MatrixView dw(grad + offset_, o, kk);
    dw.setZero();
    float* dcol = dx != nullptr && !identity_col() ? dcol_.reserve(kk * p) : nullptr;
    for (std::int64_t s = 0; s < n; ++s) {
      const float* col = im2col(x + s * in_.size());
      const float* dys = dy + s * out_.size();
      detail::gemm(false, true, o, kk, p, dys, col, true, grad + offset_);
      if (dx != nullptr) input_gradient(w, dys, dx + s * in_.size(), dcol);
    }
    if (bias_) {
      float* db = grad + offset_ + o * kk;
      for (std::int64_t c = 0; c < o; ++c) {
        double sum = 0.0;
        for (std::int64_t s = 0; s < n; ++s) {
          const float* row = dy + s * out_.size() + c * p;
          for (std::int64_t j = 0; j < p; ++j) sum += row[j];
        }
        db[c] = static_cast<float>(sum);
      }
    }
  }

  // Sample s's kernel gradient dy_s col_s^T is materialized, one product per sample as in
  // backward, and its squared norm taken; the bias part is sum over channels of (sum of dy_s)^2.
  void example_sqnorms(const float* params, const float* x, const float*, const float* dy,
                       std::int64_t n, float* dx, double* sq) override {
    const float* w = params + offset_;
    const std::int64_t o = out_.channels, kk = cols(), p = out_.height * out_.width;
    float* dw = dw_.reserve(o * kk);
    float* dcol = dx != nullptr && !identity_col() ? dcol_.reserve(kk * p) : nullptr;
    for (std::int64_t s = 0; s < n; ++s) {
      const float* col = im2col(x + s * in_.size());
      const float* dys = dy + s * out_.size();
      detail::gemm(false, true, o, kk, p, dys, col, false, dw);
      double s2 = 0.0;
      for (std::int64_t i = 0; i < o * kk; ++i) s2 += static_cast<double>(dw[i]) * dw[i];
      if (bias_)
        for (std::int64_t c = 0; c < o; ++c) {
          double b = 0.0;
          for (std::int64_t j = 0; j < p; ++j) b += dys[c * p + j];
          s2 += b * b;
        }
      sq[s] += s2;
      if (dx != nullptr) input_gradient(w, dys, dx + s * in_.size(), dcol);
    }
  }

  double forward_flops() const override {
    return 2.0 * static_cast<double>(out_.channels * cols() * out_.height * out_.width);
  }
  // The patch matrix and its gradient, for one sample at a time.
  double scratch_floats() const override {
    return 2.0 * static_cast<double>(cols()) * static_cast<double>(out_.height * out_.width);
  }
  double backward_flops(bool with_dx) const override {
    return forward_flops() * (with_dx ? 2.0 : 1.0);
  }

 private:
  std::int64_t cols() const { return in_.channels * k_ * k_; }
  bool identity_col() const { return k_ == 1 && stride_ == 1 && pad_ == 0; }
  // Sample s's input gradient W^T dy_s into dxs (through dcol and col2im unless the columns are
  // the input itself).
  void input_gradient(const float* w, const float* dys, float* dxs, float* dcol) const {
    const std::int64_t o = out_.channels, kk = cols(), p = out_.height * out_.width;
    if (identity_col()) {
      detail::gemm(true, false, kk, p, o, w, dys, false, dxs);
    } else {
      detail::gemm(true, false, kk, p, o, w, dys, false, dcol);
      col2im(dcol, dxs);
    }
  }
  std::string describe_for(std::int64_t out) const {
    return fmt::format("conv2d {}→{} {}×{}{}{}", in_.channels, out, k_, k_,
                       stride_ > 1 ? fmt::format(" /{}", stride_) : "",
                       pad_ > 0 ? fmt::format(" pad {}", pad_) : "");
  }

  // The output columns ox whose input column ox·stride − pad + j lies inside the image:
  // [first, last), so that the inner loops run without a test per element.
  std::pair<std::int64_t, std::int64_t> valid_columns(std::int64_t j) const {
    const std::int64_t wo = out_.width, wi = in_.width;
    const std::int64_t shift = pad_ - j;  // ix = ox·stride − shift
    const std::int64_t first = shift > 0 ? (shift + stride_ - 1) / stride_ : 0;
    const std::int64_t last = wi + shift - 1 < 0 ? 0 : (wi - 1 + shift) / stride_ + 1;
    return {std::min(first, wo), std::clamp(last, std::min(first, wo), wo)};
  }

  // One sample's (in·k·k) x (Ho·Wo) patch matrix: row (c, i, j), column (oy, ox) holds
  // x[c][oy·stride − pad + i][ox·stride − pad + j], 0 outside the image. A 1×1 kernel with stride
  // 1 and no padding reads x itself.
  const float* im2col(const float* x) {
    if (identity_col()) return x;
    const std::int64_t ho = out_.height, wo = out_.width, h = in_.height, wi = in_.width;
    float* col = col_.reserve(cols() * ho * wo);
    for (std::int64_t c = 0; c < in_.channels; ++c)
      for (std::int64_t i = 0; i < k_; ++i)
        for (std::int64_t j = 0; j < k_; ++j) {
          float* row = col + ((c * k_ + i) * k_ + j) * ho * wo;
          const float* plane = x + c * h * wi;
          const auto [first, last] = valid_columns(j);
          for (std::int64_t oy = 0; oy < ho; ++oy) {
            const std::int64_t iy = oy * stride_ - pad_ + i;
            float* out = row + oy * wo;
            if (iy < 0 || iy >= h) {
              std::fill_n(out, wo, 0.0f);
              continue;
            }
            const float* src = plane + iy * wi - pad_ + j;  // src[ox·stride] is column ox's
            std::fill_n(out, first, 0.0f);
            if (stride_ == 1)
              std::copy(src + first, src + last, out + first);
            else
              for (std::int64_t ox = first; ox < last; ++ox) out[ox] = src[ox * stride_];
            std::fill(out + last, out + wo, 0.0f);
          }
        }
    return col;
  }

  // dx = the sum of dcol's entries back onto the pixels they were read from, in (c, i, j, oy)
  // order for every pixel.
  void col2im(const float* dcol, float* dx) const {
    const std::int64_t ho = out_.height, wo = out_.width, h = in_.height, wi = in_.width;
    std::fill_n(dx, in_.size(), 0.0f);
    for (std::int64_t c = 0; c < in_.channels; ++c)
      for (std::int64_t i = 0; i < k_; ++i)
        for (std::int64_t j = 0; j < k_; ++j) {
          const float* row = dcol + ((c * k_ + i) * k_ + j) * ho * wo;
          float* plane = dx + c * h * wi;
          const auto [first, last] = valid_columns(j);
          for (std::int64_t oy = 0; oy < ho; ++oy) {
            const std::int64_t iy = oy * stride_ - pad_ + i;
            if (iy < 0 || iy >= h) continue;
            float* dst = plane + iy * wi - pad_ + j;  // dst[ox·stride] is column ox's pixel
            const float* src = row + oy * wo;
            if (stride_ == 1)
              for (std::int64_t ox = first; ox < last; ++ox) dst[ox] += src[ox];
            else
              for (std::int64_t ox = first; ox < last; ++ox) dst[ox * stride_] += src[ox];
          }
        }
  }

  std::int64_t k_, stride_, pad_;
  bool bias_;
  detail::AlignedBuffer col_, dcol_, dw_;
};

class Pool final : public Layer {
 public:
  Pool(Shape in, PoolKind kind, std::int64_t k, std::int64_t stride)
      : Layer(in), kind_(kind), k_(k), stride_(stride) {
    require_usage(k >= 1 && stride >= 1, "pooling needs kernel >= 1 and stride >= 1");
    out_ = Shape{in.channels, window_out(in.height, k, stride, 0, describe(), in),
                 window_out(in.width, k, stride, 0, describe(), in)};
  }
  std::string describe() const override {
    return fmt::format("{} {}×{}{}", kind_ == PoolKind::kMax ? "maxpool" : "avgpool", k_, k_,
                       stride_ != k_ ? fmt::format(" /{}", stride_) : "");
  }

  void forward(const float*, const float* x, std::int64_t n, float* y, const Pass&) override {
    const std::int64_t planes = n * in_.channels;
    const std::int64_t hw = in_.height * in_.width, ohw = out_.height * out_.width;
    std::int32_t* arg = nullptr;
    if (kind_ == PoolKind::kMax) {
      argmax_.resize(static_cast<std::size_t>(planes * ohw));
      arg = argmax_.data();
    }
    const float inv = 1.0f / static_cast<float>(k_ * k_);
    for (std::int64_t q = 0; q < planes; ++q) {
      const float* plane = x + q * hw;
      for (std::int64_t oy = 0; oy < out_.height; ++oy)
        for (std::int64_t ox = 0; ox < out_.width; ++ox) {
          const std::int64_t base = oy * stride_ * in_.width + ox * stride_;
          const std::int64_t o = q * ohw + oy * out_.width + ox;
          if (kind_ == PoolKind::kMax) {
            std::int64_t best = base;  // the first maximum in row order
            for (std::int64_t i = 0; i < k_; ++i)
              for (std::int64_t j = 0; j < k_; ++j) {
                const std::int64_t at = base + i * in_.width + j;
                if (plane[at] > plane[best]) best = at;
              }
            y[o] = plane[best];
            arg[o] = static_cast<std::int32_t>(best);
          } else {
            float sum = 0.0f;
            for (std::int64_t i = 0; i < k_; ++i)
              for (std::int64_t j = 0; j < k_; ++j) sum += plane[base + i * in_.width + j];
            y[o] = sum * inv;
          }
        }
    }
  }

  void backward(const float*, const float*, const float*, const float* dy, std::int64_t n, float*,
                float* dx) override {
    if (dx == nullptr) return;
    const std::int64_t planes = n * in_.channels;
    const std::int64_t hw = in_.height * in_.width, ohw = out_.height * out_.width;
    std::fill_n(dx, planes * hw, 0.0f);
    const float inv = 1.0f / static_cast<float>(k_ * k_);
    for (std::int64_t q = 0; q < planes; ++q) {
      float* plane = dx + q * hw;
      for (std::int64_t oy = 0; oy < out_.height; ++oy)
        for (std::int64_t ox = 0; ox < out_.width; ++ox) {
          const std::int64_t o = q * ohw + oy * out_.width + ox;
          if (kind_ == PoolKind::kMax) {
            plane[argmax_[static_cast<std::size_t>(o)]] += dy[o];
          } else {
            const std::int64_t base = oy * stride_ * in_.width + ox * stride_;
            for (std::int64_t i = 0; i < k_; ++i)
              for (std::int64_t j = 0; j < k_; ++j) plane[base + i * in_.width + j] += dy[o] * inv;
          }
        }
    }
  }
  double forward_flops() const override { return static_cast<double>(out_.size() * k_ * k_); }

 private:
  PoolKind kind_;
  std::int64_t k_, stride_;
  std::vector<std::int32_t> argmax_;  // max pooling: the winning input of each output
};

class GlobalAvgPool final : public Layer {
 public:
  explicit GlobalAvgPool(Shape in) : Layer(in) { out_ = Shape{in.channels, 1, 1}; }
  std::string describe() const override { return "global_avgpool"; }
  void forward(const float*, const float* x, std::int64_t n, float* y, const Pass&) override {
    const std::int64_t hw = in_.height * in_.width;
    for (std::int64_t q = 0; q < n * in_.channels; ++q) {
      double sum = 0.0;
      for (std::int64_t i = 0; i < hw; ++i) sum += x[q * hw + i];
      y[q] = static_cast<float>(sum / static_cast<double>(hw));
    }
  }
  void backward(const float*, const float*, const float*, const float* dy, std::int64_t n, float*,
                float* dx) override {
    if (dx == nullptr) return;
    const std::int64_t hw = in_.height * in_.width;
    const float inv = 1.0f / static_cast<float>(hw);
    for (std::int64_t q = 0; q < n * in_.channels; ++q) std::fill_n(dx + q * hw, hw, dy[q] * inv);
  }
  double forward_flops() const override { return static_cast<double>(in_.size()); }
};

}  // namespace

std::unique_ptr<Layer> make_conv2d(Shape in, std::int64_t out_channels, std::int64_t kernel,
                                   std::int64_t stride, std::int64_t padding, bool bias) {
  return std::make_unique<Conv2d>(in, out_channels, kernel, stride, padding, bias);
}
std::unique_ptr<Layer> make_pool(Shape in, PoolKind kind, std::int64_t kernel,
                                 std::int64_t stride) {
  return std::make_unique<Pool>(in, kind, kernel, stride);
}
std::unique_ptr<Layer> make_global_avgpool(Shape in) { return std::make_unique<GlobalAvgPool>(in); }

}  // namespace cohort::model
