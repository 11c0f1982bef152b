// A float64 reference of the layer engine for the unit tests (tests/unit/test_layer_gradients.cpp,
// test_layers.cpp), written from the layer definitions in docs/models.md and sharing no code
// with the engine; and the random images and parameters the tests feed both.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/layer_model.h"

namespace cohort::test::layers {

using cohort::Purpose;
using cohort::Rng;
using namespace cohort::model;

// A sample is C x H x W values, channel-major; parameters are read in the
// engine's layout (each layer's weights, then its bias / gamma, beta), in layer order.

struct T {
  std::int64_t c = 0, h = 1, w = 1;
  std::vector<double> v;
  double& at(std::int64_t ch, std::int64_t y, std::int64_t x) { return v[(ch * h + y) * w + x]; }
  double at(std::int64_t ch, std::int64_t y, std::int64_t x) const {
    return v[(ch * h + y) * w + x];
  }
};

inline T tensor(std::int64_t c, std::int64_t h, std::int64_t w) {
  return T{c, h, w, std::vector<double>(static_cast<std::size_t>(c * h * w), 0.0)};
}

inline T ref_conv(const T& x, const double*& p, std::int64_t out, std::int64_t k, std::int64_t s,
                  std::int64_t pad, bool bias) {
  const std::int64_t ho = (x.h + 2 * pad - k) / s + 1, wo = (x.w + 2 * pad - k) / s + 1;
  T y = tensor(out, ho, wo);
  const double* w = p;
  p += out * x.c * k * k;
  const double* b = bias ? p : nullptr;
  if (bias) p += out;
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t oy = 0; oy < ho; ++oy)
      for (std::int64_t ox = 0; ox < wo; ++ox) {
        double sum = b ? b[o] : 0.0;
        for (std::int64_t c = 0; c < x.c; ++c)
          for (std::int64_t i = 0; i < k; ++i)
            for (std::int64_t j = 0; j < k; ++j) {
              const std::int64_t iy = oy * s - pad + i, ix = ox * s - pad + j;
              if (iy >= 0 && iy < x.h && ix >= 0 && ix < x.w)
                sum += w[((o * x.c + c) * k + i) * k + j] * x.at(c, iy, ix);
            }
        y.at(o, oy, ox) = sum;
      }
  return y;
}

inline T ref_pool(const T& x, std::int64_t k, std::int64_t s, bool max) {
  T y = tensor(x.c, (x.h - k) / s + 1, (x.w - k) / s + 1);
  for (std::int64_t c = 0; c < x.c; ++c)
    for (std::int64_t oy = 0; oy < y.h; ++oy)
      for (std::int64_t ox = 0; ox < y.w; ++ox) {
        double acc = max ? -INFINITY : 0.0;
        for (std::int64_t i = 0; i < k; ++i)
          for (std::int64_t j = 0; j < k; ++j) {
            const double v = x.at(c, oy * s + i, ox * s + j);
            acc = max ? std::max(acc, v) : acc + v / static_cast<double>(k * k);
          }
        y.at(c, oy, ox) = acc;
      }
  return y;
}

inline T ref_gap(const T& x) {
  T y = tensor(x.c, 1, 1);
  for (std::int64_t c = 0; c < x.c; ++c) {
    for (std::int64_t i = 0; i < x.h * x.w; ++i) y.v[c] += x.v[c * x.h * x.w + i];
    y.v[c] /= static_cast<double>(x.h * x.w);
  }
  return y;
}

inline T ref_gn(const T& x, const double*& p, std::int64_t groups, bool affine) {
  T y = x;
  const std::int64_t per = x.c / groups, hw = x.h * x.w, m = per * hw;
  for (std::int64_t g = 0; g < groups; ++g) {
    double mean = 0.0, var = 0.0;
    for (std::int64_t i = 0; i < m; ++i) mean += x.v[g * m + i];
    mean /= static_cast<double>(m);
    for (std::int64_t i = 0; i < m; ++i) var += (x.v[g * m + i] - mean) * (x.v[g * m + i] - mean);
    var /= static_cast<double>(m);
    for (std::int64_t i = 0; i < m; ++i) {
      const std::int64_t c = g * per + i / hw;
      const double xhat = (x.v[g * m + i] - mean) / std::sqrt(var + 1e-5);
      y.v[g * m + i] = affine ? p[c] * xhat + p[x.c + c] : xhat;
    }
  }
  if (affine) p += 2 * x.c;
  return y;
}

inline T ref_linear(const T& x, const double*& p, std::int64_t out) {
  const std::int64_t f = static_cast<std::int64_t>(x.v.size());
  T y = tensor(out, 1, 1);
  for (std::int64_t o = 0; o < out; ++o) {
    double sum = p[out * f + o];
    for (std::int64_t j = 0; j < f; ++j) sum += p[o * f + j] * x.v[j];
    y.v[o] = sum;
  }
  p += out * (f + 1);
  return y;
}

inline T ref_map(T x, double (*f)(double)) {
  for (auto& v : x.v) v = f(v);
  return x;
}
inline double relu(double v) { return v > 0.0 ? v : 0.0; }
inline double tanh_(double v) { return std::tanh(v); }

inline std::int64_t num(const LayerSpec& s, const std::string& key, std::int64_t def) {
  const auto it = s.find(key);
  return it == s.end() ? def : std::stoll(it->second);
}

inline T ref_residual(const T& x, const double*& p, std::int64_t out, std::int64_t stride,
                      std::int64_t groups) {
  T a = ref_conv(x, p, out, 3, stride, 1, false);
  a = ref_gn(a, p, groups, true);
  a = ref_map(a, relu);
  a = ref_conv(a, p, out, 3, 1, 1, false);
  a = ref_gn(a, p, groups, true);
  T s = x;
  if (stride != 1 || out != x.c) {
    s = ref_conv(x, p, out, 1, stride, 0, false);
    s = ref_gn(s, p, groups, true);
  }
  for (std::size_t i = 0; i < a.v.size(); ++i) a.v[i] = relu(a.v[i] + s.v[i]);
  return a;
}

// One sample through the listed layers (dropout: the evaluation pass, the identity).
inline T ref_forward(T x, const std::vector<LayerSpec>& specs, const double* p) {
  for (const auto& s : specs) {
    const std::string type = s.at("type");
    if (type == "conv2d")
      x = ref_conv(x, p, num(s, "out", 0), num(s, "kernel", 0), num(s, "stride", 1),
                   num(s, "padding", 0), !s.count("bias") || s.at("bias") == "true");
    else if (type == "maxpool" || type == "avgpool")
      x = ref_pool(x, num(s, "kernel", 0), num(s, "stride", num(s, "kernel", 0)),
                   type == "maxpool");
    else if (type == "global_avgpool")
      x = ref_gap(x);
    else if (type == "relu")
      x = ref_map(x, relu);
    else if (type == "tanh")
      x = ref_map(x, tanh_);
    else if (type == "groupnorm")
      x = ref_gn(x, p, num(s, "groups", 0), !s.count("affine") || s.at("affine") == "true");
    else if (type == "flatten")
      x = T{static_cast<std::int64_t>(x.v.size()), 1, 1, x.v};
    else if (type == "linear")
      x = ref_linear(x, p, num(s, "out", 0));
    else if (type == "residual")
      x = ref_residual(x, p, num(s, "out", 0), num(s, "stride", 1), num(s, "groups", 2));
    else if (type != "dropout")
      FAIL("reference: unknown layer " << type);
  }
  return x;
}

struct Images {
  Shape shape;
  std::int64_t rows = 0;
  std::vector<float> x;
  std::vector<std::int32_t> labels;
  Batch batch() const {
    Batch b{x.data(), rows, shape.size(), labels.data(), nullptr};
    b.shape = shape;
    return b;
  }
};

inline Images make_images(Shape shape, std::int64_t rows, int classes, std::uint32_t seed) {
  Rng rng(77, seed, 0, Purpose::kTest);
  Images d{shape, rows, {}, {}};
  for (std::int64_t i = 0; i < rows * shape.size(); ++i)
    d.x.push_back(static_cast<float>(rng.normal()));
  for (std::int64_t i = 0; i < rows; ++i)
    d.labels.push_back(static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes))));
  return d;
}

// Mean softmax cross-entropy of the reference over the batch.
inline double ref_loss(const std::vector<LayerSpec>& specs, const Images& d,
                       const std::vector<double>& p) {
  double sum = 0.0;
  for (std::int64_t r = 0; r < d.rows; ++r) {
    T x{d.shape.channels, d.shape.height, d.shape.width, {}};
    for (std::int64_t i = 0; i < d.shape.size(); ++i) x.v.push_back(d.x[r * d.shape.size() + i]);
    const T z = ref_forward(x, specs, p.data());
    double mx = z.v[0];
    for (double v : z.v) mx = std::max(mx, v);
    double e = 0.0;
    for (double v : z.v) e += std::exp(v - mx);
    sum += std::log(e) + mx - z.v[static_cast<std::size_t>(d.labels[r])];
  }
  return sum / static_cast<double>(d.rows);
}

// Initialised parameters plus N(0, 0.1²) noise, so that biases, gammas and betas are not at their
// special initial values.
inline std::vector<float> test_params(const Model& m, std::uint32_t seed) {
  std::vector<float> p(static_cast<std::size_t>(m.num_params()));
  Rng init(5, seed, 0, Purpose::kModelInit);
  m.init(p.data(), init);
  Rng noise(6, seed, 0, Purpose::kTest);
  for (auto& v : p) v += static_cast<float>(noise.normal(0.0, 0.1));
  return p;
}

}  // namespace cohort::test::layers
