// The layer engine (docs/models.md): gradients of every layer and of each named model against
// central finite differences of an independent float64 reference, output shapes against
// hand-computed ones, hand-computed forward values, dropout keyed by its stream and off in
// evaluation, and the errors of a model.layers list that does not fit.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "algo/problem.h"
#include "algo/run_schema.h"
#include "core/config.h"
#include "core/rng.h"
#include "model/layer_model.h"
#include "test_support.h"

using cohort::LayerView;
using cohort::Purpose;
using cohort::Rng;
using namespace cohort::model;

namespace {

// ---- Float64 reference, written from the layer definitions in docs/models.md and sharing no
// code with the engine. A sample is C x H x W values, channel-major; parameters are read in the
// engine's layout (each layer's weights, then its bias / gamma, beta), in layer order.

struct T {
  std::int64_t c = 0, h = 1, w = 1;
  std::vector<double> v;
  double& at(std::int64_t ch, std::int64_t y, std::int64_t x) { return v[(ch * h + y) * w + x]; }
  double at(std::int64_t ch, std::int64_t y, std::int64_t x) const {
    return v[(ch * h + y) * w + x];
  }
};

T tensor(std::int64_t c, std::int64_t h, std::int64_t w) {
  return T{c, h, w, std::vector<double>(static_cast<std::size_t>(c * h * w), 0.0)};
}

T ref_conv(const T& x, const double*& p, std::int64_t out, std::int64_t k, std::int64_t s,
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

T ref_pool(const T& x, std::int64_t k, std::int64_t s, bool max) {
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

T ref_gap(const T& x) {
  T y = tensor(x.c, 1, 1);
  for (std::int64_t c = 0; c < x.c; ++c) {
    for (std::int64_t i = 0; i < x.h * x.w; ++i) y.v[c] += x.v[c * x.h * x.w + i];
    y.v[c] /= static_cast<double>(x.h * x.w);
  }
  return y;
}

T ref_gn(const T& x, const double*& p, std::int64_t groups, bool affine) {
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

T ref_linear(const T& x, const double*& p, std::int64_t out) {
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

T ref_map(T x, double (*f)(double)) {
  for (auto& v : x.v) v = f(v);
  return x;
}
double relu(double v) { return v > 0.0 ? v : 0.0; }
double tanh_(double v) { return std::tanh(v); }

std::int64_t num(const LayerSpec& s, const std::string& key, std::int64_t def) {
  const auto it = s.find(key);
  return it == s.end() ? def : std::stoll(it->second);
}

T ref_residual(const T& x, const double*& p, std::int64_t out, std::int64_t stride,
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
T ref_forward(T x, const std::vector<LayerSpec>& specs, const double* p) {
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

Images make_images(Shape shape, std::int64_t rows, int classes, std::uint32_t seed) {
  Rng rng(77, seed, 0, Purpose::kTest);
  Images d{shape, rows, {}, {}};
  for (std::int64_t i = 0; i < rows * shape.size(); ++i)
    d.x.push_back(static_cast<float>(rng.normal()));
  for (std::int64_t i = 0; i < rows; ++i)
    d.labels.push_back(static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes))));
  return d;
}

// Mean softmax cross-entropy of the reference over the batch.
double ref_loss(const std::vector<LayerSpec>& specs, const Images& d,
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
std::vector<float> test_params(const Model& m, std::uint32_t seed) {
  std::vector<float> p(static_cast<std::size_t>(m.num_params()));
  Rng init(5, seed, 0, Purpose::kModelInit);
  m.init(p.data(), init);
  Rng noise(6, seed, 0, Purpose::kTest);
  for (auto& v : p) v += static_cast<float>(noise.normal(0.0, 0.1));
  return p;
}

// The model's float32 loss and gradient against the reference's loss and central differences
// (h = 1e-6 in float64: truncation O(h²) and rounding O(1e-16 / h) are both far below the
// float32 error). On `per_layer` coordinates of each parameter layer (all when 0): its first,
// its last and random ones. Tolerance: 2e-3 relative plus 1e-4 · (1 + the largest |gradient|):
// the float32 forward and backward sums run over at most a few thousand terms, whose rounding
// (n · 2⁻²⁴ relative to the sum of |terms|) stays below that; a wrong index, sign or factor is
// off by O(1) relative.
void check_gradient(const Model& model, const std::vector<LayerSpec>& specs, const Images& d,
                    int per_layer, std::uint32_t seed) {
  const std::vector<float> pf = test_params(model, seed);
  std::vector<float> grad(pf.size());
  const double loss = model.loss_grad(pf.data(), d.batch(), grad.data());
  std::vector<double> p(pf.begin(), pf.end());
  const double want = ref_loss(specs, d, p);
  INFO(model.name() << ": loss " << loss << ", reference " << want);
  CHECK(std::abs(loss - want) <= 1e-5 * (1.0 + std::abs(want)));
  double gmax = 0.0;
  for (float g : grad) gmax = std::max(gmax, static_cast<double>(std::abs(g)));
  Rng pick(8, seed, 0, Purpose::kTest);
  for (const auto& view : model.layers()) {
    std::vector<std::int64_t> idx;
    if (per_layer == 0 || view.size() <= per_layer) {
      for (std::int64_t i = 0; i < view.size(); ++i) idx.push_back(i);
    } else {
      idx = {0, view.size() - 1};
      for (int i = 2; i < per_layer; ++i)
        idx.push_back(
            static_cast<std::int64_t>(pick.below(static_cast<std::uint64_t>(view.size()))));
    }
    for (const std::int64_t i : idx) {
      const std::size_t j = static_cast<std::size_t>(view.offset + i);
      const double h = 1e-6, keep = p[j];
      p[j] = keep + h;
      const double up = ref_loss(specs, d, p);
      p[j] = keep - h;
      const double down = ref_loss(specs, d, p);
      p[j] = keep;
      const double fd = (up - down) / (2.0 * h);
      const double tol = 2e-3 * std::abs(fd) + 1e-4 * (1.0 + gmax);
      INFO(model.name() << " " << view.name << "[" << i << "]: gradient " << grad[j]
                        << ", finite difference " << fd << ", tolerance " << tol);
      CHECK(std::abs(grad[j] - fd) <= tol);
    }
  }
}

void check_stack(Shape in, int classes, const std::vector<LayerSpec>& specs, std::uint32_t seed) {
  LayerModel model("test", in, classes, build_stack(in, specs));
  check_gradient(model, specs, make_images(in, 3, classes, seed), 0, seed);
}

}  // namespace

TEST_CASE("every layer's gradient matches finite differences of the float64 reference",
          "[layers]") {
  const Shape in{2, 5, 5};
  SECTION("conv2d, flatten, linear") {
    check_stack(in, 3,
                {{{"type", "conv2d"}, {"out", "3"}, {"kernel", "3"}},
                 {{"type", "flatten"}},
                 {{"type", "linear"}, {"out", "3"}}},
                1);
  }
  SECTION("conv2d with stride, padding, no bias; tanh") {
    check_stack(in, 3,
                {{{"type", "conv2d"},
                  {"out", "4"},
                  {"kernel", "3"},
                  {"stride", "2"},
                  {"padding", "1"},
                  {"bias", "false"}},
                 {{"type", "tanh"}},
                 {{"type", "linear"}, {"out", "3"}}},
                2);
  }
  SECTION("1x1 conv2d, relu, max pooling") {
    check_stack(in, 3,
                {{{"type", "conv2d"}, {"out", "3"}, {"kernel", "1"}},
                 {{"type", "relu"}},
                 {{"type", "maxpool"}, {"kernel", "2"}},
                 {{"type", "flatten"}},
                 {{"type", "linear"}, {"out", "3"}}},
                3);
  }
  SECTION("average pooling with overlapping windows, dropout in evaluation") {
    check_stack(in, 2,
                {{{"type", "conv2d"}, {"out", "2"}, {"kernel", "2"}, {"padding", "1"}},
                 {{"type", "avgpool"}, {"kernel", "3"}, {"stride", "2"}},
                 {{"type", "dropout"}, {"p", "0.5"}},
                 {{"type", "linear"}, {"out", "2"}}},
                4);
  }
  SECTION("groupnorm with and without affine, global average pooling") {
    check_stack(in, 3,
                {{{"type", "conv2d"}, {"out", "4"}, {"kernel", "3"}, {"padding", "1"}},
                 {{"type", "groupnorm"}, {"groups", "2"}},
                 {{"type", "relu"}},
                 {{"type", "groupnorm"}, {"groups", "4"}, {"affine", "false"}},
                 {{"type", "global_avgpool"}},
                 {{"type", "linear"}, {"out", "3"}}},
                5);
  }
  SECTION("residual blocks: identity and projection shortcuts") {
    check_stack(in, 3,
                {{{"type", "residual"}, {"out", "2"}, {"groups", "1"}},
                 {{"type", "residual"}, {"out", "4"}, {"stride", "2"}, {"groups", "2"}},
                 {{"type", "global_avgpool"}},
                 {{"type", "linear"}, {"out", "3"}}},
                6);
  }
}

namespace {

// The architectures as docs/models.md defines them, written out independently of the engine.
std::vector<LayerSpec> cnn_mnist_spec(int classes) {
  return {{{"type", "conv2d"}, {"out", "32"}, {"kernel", "3"}},
          {{"type", "relu"}},
          {{"type", "conv2d"}, {"out", "64"}, {"kernel", "3"}},
          {{"type", "relu"}},
          {{"type", "maxpool"}, {"kernel", "2"}},
          {{"type", "flatten"}},
          {{"type", "linear"}, {"out", "128"}},
          {{"type", "relu"}},
          {{"type", "linear"}, {"out", std::to_string(classes)}}};
}

std::vector<LayerSpec> lenet5_spec(int classes) {
  return {{{"type", "conv2d"}, {"out", "6"}, {"kernel", "5"}, {"padding", "2"}},
          {{"type", "relu"}},
          {{"type", "maxpool"}, {"kernel", "2"}},
          {{"type", "conv2d"}, {"out", "16"}, {"kernel", "5"}},
          {{"type", "relu"}},
          {{"type", "maxpool"}, {"kernel", "2"}},
          {{"type", "linear"}, {"out", "120"}},
          {{"type", "relu"}},
          {{"type", "linear"}, {"out", "84"}},
          {{"type", "relu"}},
          {{"type", "linear"}, {"out", std::to_string(classes)}}};
}

std::vector<LayerSpec> resnet_spec(int n, int classes) {
  std::vector<LayerSpec> s = {
      {{"type", "conv2d"}, {"out", "16"}, {"kernel", "3"}, {"padding", "1"}, {"bias", "false"}},
      {{"type", "groupnorm"}, {"groups", "2"}},
      {{"type", "relu"}}};
  for (int c : {16, 32, 64})
    for (int b = 0; b < n; ++b)
      s.push_back({{"type", "residual"},
                   {"out", std::to_string(c)},
                   {"stride", b == 0 && c > 16 ? "2" : "1"},
                   {"groups", "2"}});
  s.push_back({{"type", "global_avgpool"}});
  s.push_back({{"type", "linear"}, {"out", std::to_string(classes)}});
  return s;
}

}  // namespace

TEST_CASE("the named models' gradients match finite differences of the float64 reference",
          "[layers][models]") {
  SECTION("cnn_mnist on 1x8x8") {
    const Shape in{1, 8, 8};
    check_gradient(*make_cnn_mnist(in, 4), cnn_mnist_spec(4), make_images(in, 2, 4, 11), 6, 11);
  }
  SECTION("lenet5 on 1x12x12") {
    const Shape in{1, 12, 12};
    check_gradient(*make_lenet5(in, 3), lenet5_spec(3), make_images(in, 2, 3, 12), 6, 12);
  }
  SECTION("resnet8 on 3x8x8") {
    const Shape in{3, 8, 8};
    check_gradient(*make_resnet(in, 3, 1, 2), resnet_spec(1, 3), make_images(in, 2, 3, 13), 4, 13);
  }
  SECTION("resnet20 on 1x8x8") {
    const Shape in{1, 8, 8};
    check_gradient(*make_resnet(in, 3, 3, 2), resnet_spec(3, 3), make_images(in, 2, 3, 14), 3, 14);
  }
}

TEST_CASE("layer output shapes match hand-computed ones", "[layers]") {
  struct Case {
    Shape in;
    std::int64_t out, k, s, p;
    Shape want;
  };
  // (H + 2p − k) / s + 1, floor.
  for (const Case& c :
       {Case{{1, 28, 28}, 32, 3, 1, 0, {32, 26, 26}}, Case{{1, 28, 28}, 6, 5, 1, 2, {6, 28, 28}},
        Case{{16, 32, 32}, 32, 3, 2, 1, {32, 16, 16}}, Case{{3, 7, 9}, 4, 3, 2, 0, {4, 3, 4}},
        Case{{2, 5, 5}, 1, 5, 1, 0, {1, 1, 1}}, Case{{2, 4, 6}, 3, 1, 3, 0, {3, 2, 2}},
        Case{{1, 3, 3}, 2, 2, 2, 1, {2, 2, 2}}}) {
    const auto l = make_conv2d(c.in, c.out, c.k, c.s, c.p, true);
    INFO(shape_text(c.in) << " k " << c.k << " s " << c.s << " p " << c.p);
    CHECK(l->out_shape() == c.want);
  }
  CHECK(make_pool({64, 24, 24}, PoolKind::kMax, 2, 2)->out_shape() == Shape{64, 12, 12});
  CHECK(make_pool({3, 5, 5}, PoolKind::kMax, 2, 2)->out_shape() == Shape{3, 2, 2});
  CHECK(make_pool({3, 7, 6}, PoolKind::kAverage, 3, 1)->out_shape() == Shape{3, 5, 4});
  CHECK(make_pool({3, 7, 7}, PoolKind::kAverage, 3, 2)->out_shape() == Shape{3, 3, 3});
  CHECK(make_global_avgpool({5, 7, 3})->out_shape() == Shape{5, 1, 1});
  CHECK(make_activation({5, 7, 3}, Elementwise::kRelu)->out_shape() == Shape{5, 7, 3});
  CHECK(make_activation({5, 7, 3}, Elementwise::kTanh)->out_shape() == Shape{5, 7, 3});
  CHECK(make_dropout({5, 7, 3}, 0.5)->out_shape() == Shape{5, 7, 3});
  CHECK(make_flatten({64, 12, 12})->out_shape() == Shape{9216, 1, 1});
  CHECK(make_linear_layer({64, 12, 12}, 128)->out_shape() == Shape{128, 1, 1});
  CHECK(make_group_norm({6, 4, 4}, 3, true)->out_shape() == Shape{6, 4, 4});
  CHECK(make_residual({16, 8, 8}, 32, 2, 2)->out_shape() == Shape{32, 4, 4});
  CHECK(make_residual({16, 7, 7}, 16, 1, 2)->out_shape() == Shape{16, 7, 7});

  const auto err = cohort::test::usage_error_of([] { make_conv2d({1, 4, 4}, 2, 5, 1, 0, true); });
  CHECK(err == "conv2d 1→2 5×5 does not fit input 4×4×1: (4 + 2·0 − 5)/1 + 1 < 1");
  CHECK(cohort::test::usage_error_of([] {
          make_group_norm({6, 2, 2}, 4, true);
        }) == "groupnorm: 4 groups do not divide 6 channels (input 2×2×6)");
}

TEST_CASE("the named models have the documented shapes and sizes", "[layers][models]") {
  const auto cnn = make_cnn_mnist({1, 28, 28}, 10);
  CHECK(cnn->num_params() == 320 + 18496 + 9216 * 128 + 128 + 1290);
  const std::string s = cnn->summary();
  CHECK(s.find("conv2d 32→64 3×3: 26×26×32 → 24×24×64, 18,496 params") != std::string::npos);
  CHECK(s.find("maxpool 2×2: 24×24×64 → 12×12×64, 0 params") != std::string::npos);
  CHECK(s.find("linear 9216→128: 9216 → 128, 1,179,776 params") != std::string::npos);
  // A conv kernel is one out x (in·k·k) matrix.
  CHECK(cnn->layers()[2].name == "conv2.w");
  CHECK(cnn->layers()[2].rows == 64);
  CHECK(cnn->layers()[2].cols == 288);
  const auto lenet = make_lenet5({1, 28, 28}, 10);
  CHECK(lenet->num_params() == 156 + 2416 + 48120 + 10164 + 850);
  // ResNet-20: 19 convolutions (1 + 18 in blocks) and 2 projection shortcuts, GroupNorm affine.
  const auto r20 = make_resnet({3, 32, 32}, 10, 3, 2);
  std::int64_t convs = 0;
  for (const auto& v : r20->layers())
    if (v.name.ends_with(".w") && v.name.find("conv") != std::string::npos) ++convs;
  CHECK(convs == 21);
  // 3·16·9 + 16·16·9·6 + (16·32·9 + 32·32·9·5 + 16·32) + (32·64·9 + 64·64·9·5 + 32·64) weights,
  // 2 GroupNorm parameters per channel of each normalisation, and the 64·10 + 10 classifier.
  const std::int64_t conv_w = 3 * 16 * 9 + 16 * 16 * 9 * 6 + 16 * 32 * 9 + 32 * 32 * 9 * 5 +
                              16 * 32 + 32 * 64 * 9 + 64 * 64 * 9 * 5 + 32 * 64;
  const std::int64_t gn = 2 * (16 + 16 * 6 + 32 * 6 + 32 + 64 * 6 + 64);
  CHECK(r20->num_params() == conv_w + gn + 650);
  CHECK(cohort::test::usage_error_of([] {
          make_cnn_mnist({784, 1, 1}, 10);
        })
            .starts_with("model.name = cnn_mnist does not fit the data's 784 samples: layer[0] "
                         "(conv2d): conv2d 784→32 "
                         "3×3 does not fit input 784"));
}

TEST_CASE("hand-computed forward values of conv2d, pooling and groupnorm", "[layers]") {
  std::vector<LayerView> views;
  SECTION("conv2d, 2x2 kernel, with and without stride and padding") {
    const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};  // 1x3x3
    auto plain = make_conv2d({1, 3, 3}, 1, 2, 1, 0, true);
    plain->add_params(views, "c");
    const std::vector<float> p = {1, 0, 0, 1, 0.5f};  // w = [[1, 0], [0, 1]], b = 0.5
    std::vector<float> y(4);
    plain->forward(p.data(), x.data(), 1, y.data(), Pass{});
    CHECK(y == std::vector<float>{6.5f, 8.5f, 12.5f, 14.5f});
    std::vector<LayerView> v2;
    auto strided = make_conv2d({1, 3, 3}, 1, 2, 2, 1, false);
    strided->add_params(v2, "c");
    strided->forward(p.data(), x.data(), 1, y.data(), Pass{});
    CHECK(y == std::vector<float>{1, 3, 7, 14});
  }
  SECTION("max and average pooling") {
    std::vector<float> x(16);
    for (int i = 0; i < 16; ++i) x[i] = static_cast<float>(i + 1);
    std::vector<float> y(4);
    make_pool({1, 4, 4}, PoolKind::kMax, 2, 2)->forward(nullptr, x.data(), 1, y.data(), Pass{});
    CHECK(y == std::vector<float>{6, 8, 14, 16});
    make_pool({1, 4, 4}, PoolKind::kAverage, 2, 2)->forward(nullptr, x.data(), 1, y.data(), Pass{});
    CHECK(y == std::vector<float>{3.5f, 5.5f, 11.5f, 13.5f});
  }
  SECTION("groupnorm, one group over two channels") {
    auto gn = make_group_norm({2, 1, 2}, 1, true);
    gn->add_params(views, "g");
    const std::vector<float> p = {1, 2, 0, 1};  // gamma = (1, 2), beta = (0, 1)
    const std::vector<float> x = {1, 2, 3, 4};  // mean 2.5, variance 1.25
    std::vector<float> y(4);
    gn->forward(p.data(), x.data(), 1, y.data(), Pass{});
    const double r = 1.0 / std::sqrt(1.25 + 1e-5);
    const std::vector<double> want = {-1.5 * r, -0.5 * r, 2 * 0.5 * r + 1, 2 * 1.5 * r + 1};
    for (int i = 0; i < 4; ++i) CHECK(y[i] == Approx(want[i]).epsilon(1e-6));
  }
}

TEST_CASE("dropout masks come from the key and are off in evaluation", "[layers]") {
  const Shape in{2, 10, 10};
  const std::int64_t n = 9, count = n * in.size();
  std::vector<float> x(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) x[i] = 1.0f + static_cast<float>(i % 7);
  const auto run = [&](Rng* rng) {
    auto d = make_dropout(in, 0.25);
    std::vector<float> y(x.size()), dy(x.size(), 3.0f), dx(x.size());
    d->forward(nullptr, x.data(), n, y.data(), Pass{rng});
    d->backward(nullptr, x.data(), y.data(), dy.data(), n, nullptr, dx.data());
    return std::pair{y, dx};
  };
  Rng a(9, 4, 17, Purpose::kDataGeneration), b(9, 4, 17, Purpose::kDataGeneration),
      other(9, 4, 18, Purpose::kDataGeneration);
  const auto [ya, dxa] = run(&a);
  const auto [yb, dxb] = run(&b);
  const auto [yo, dxo] = run(&other);
  CHECK(ya == yb);  // same key: same mask
  CHECK(dxa == dxb);
  CHECK(ya != yo);  // another client's stream: another mask
  std::int64_t kept = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool keep = ya[i] != 0.0f;
    kept += keep;
    CHECK(ya[i] == (keep ? x[i] * static_cast<float>(1.0 / 0.75) : 0.0f));
    CHECK(dxa[i] == (keep ? 3.0f * static_cast<float>(1.0 / 0.75) : 0.0f));
  }
  // 1800 draws with keep probability 0.75: 1350 ± 18.4 (one standard deviation).
  CHECK(std::abs(kept - 1350) < 100);
  const auto [ye, dxe] = run(nullptr);
  CHECK(ye == x);  // evaluation: the identity
  CHECK(dxe == std::vector<float>(x.size(), 3.0f));

  // Through a model: a training pass is a function of the stream, evaluation ignores dropout.
  const Shape img{1, 8, 8};
  const auto model = make_cnn_mnist(img, 3);
  const Images d = make_images(img, 4, 3, 21);
  const std::vector<float> p = test_params(*model, 21);
  std::vector<float> g1(p.size()), g2(p.size()), g3(p.size());
  Rng r1(3, 1, 2, Purpose::kDataGeneration), r2(3, 1, 2, Purpose::kDataGeneration),
      r3(3, 1, 3, Purpose::kDataGeneration);
  const double l1 = model->loss_grad(p.data(), d.batch(), g1.data(), &r1);
  const double l2 = model->loss_grad(p.data(), d.batch(), g2.data(), &r2);
  model->loss_grad(p.data(), d.batch(), g3.data(), &r3);
  CHECK(l1 == l2);
  CHECK(g1 == g2);
  CHECK(g1 != g3);
  double sum = 0.0;
  std::int64_t correct = 0;
  model->evaluate(p.data(), d.batch(), &sum, &correct);
  CHECK(model->loss_grad(p.data(), d.batch(), nullptr) == Approx(sum / 4).epsilon(1e-12));
  CHECK(l1 != Approx(sum / 4).epsilon(1e-6));
}

TEST_CASE("model instances share no scratch", "[layers]") {
  // Two instances from one factory, used alternately, give what each gives alone.
  const Shape img{1, 8, 8};
  const auto m1 = make_lenet5({1, 12, 12}, 3);
  const auto m2 = make_lenet5({1, 12, 12}, 3);
  const Images a = make_images({1, 12, 12}, 3, 3, 31), b = make_images({1, 12, 12}, 5, 3, 32);
  const std::vector<float> p = test_params(*m1, 31);
  std::vector<float> ga(p.size()), gb(p.size()), ga2(p.size());
  m1->loss_grad(p.data(), a.batch(), ga.data());
  m2->loss_grad(p.data(), b.batch(), gb.data());
  m1->loss_grad(p.data(), a.batch(), ga2.data());
  CHECK(ga == ga2);
  (void)img;
}

namespace {

const char* kImages =
    "seed: 1\n"
    "data: {name: inline, task: classification, dim: 16, shape: [1, 4, 4], y: [0, 1],\n"
    "       x: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,\n"
    "           1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}\n"
    "clients: {num_clients: 2}\n";

std::string layers_error(const std::string& layers) {
  return cohort::test::usage_error_of([&] {
    const auto cfg = cohort::Config::from_text(
        std::string(kImages) + "model: {name: layers, layers: " + layers + "}\n", {},
        cohort::algo::run_schema());
    cohort::algo::make_problem(cfg);
  });
}

}  // namespace

TEST_CASE("model.layers lists that do not fit are usage errors naming the layer", "[layers]") {
  CHECK(layers_error("[{type: conv2d, out: 2, kernel: 3}, {type: conv2d, out: 2, kernel: 3}, "
                     "{type: flatten}, {type: linear, out: 2}]") ==
        "model.layers[1] (conv2d): conv2d 2→2 3×3 does not fit input 2×2×2: (2 + 2·0 − 3)/1 + 1 "
        "< 1");
  CHECK(layers_error("[{type: flatten}, {type: linear, in: 15, out: 2}]") ==
        "model.layers[1] (linear): in = 15 but its input 16 has 16 values");
  CHECK(layers_error("[{type: conv2d, in: 3, out: 2, kernel: 1}]") ==
        "model.layers[0] (conv2d): in = 3 but its input 4×4×1 has 1 channels");
  CHECK(layers_error("[{type: conv, out: 2}]") ==
        "model.layers[0]: unknown type 'conv' (known: conv2d, maxpool, avgpool, global_avgpool, "
        "relu, tanh, dropout, groupnorm, flatten, linear, residual); did you mean 'conv2d'?");
  CHECK(layers_error("[{type: relu, kernel: 3}]") ==
        "model.layers[0] (relu): key 'kernel' is not an option of relu (its keys: type)");
  CHECK(layers_error("[{type: conv2d, out: 2}]") == "model.layers[0] (conv2d): needs key 'kernel'");
  CHECK(layers_error("[{type: conv2d, out: 0, kernel: 3}]") ==
        "model.layers[0] (conv2d): out = '0' is not allowed: expected an integer in [1, 1048576]");
  CHECK(layers_error("[{type: dropout, p: 1}]") ==
        "model.layers[0] (dropout): p = '1' is not allowed: expected a number in [0, 1)");
  CHECK(layers_error("[{type: groupnorm, groups: 3}]") ==
        "model.layers[0] (groupnorm): groupnorm: 3 groups do not divide 1 channels (input "
        "4×4×1)");
  CHECK(layers_error("[{type: flatten}]") ==
        "model.name = layers: the last layer gives 16 values (16), the data has 2 classes; end "
        "with {type: linear, out: 2}");
  CHECK(layers_error("[]") ==
        "model.layers is empty: list the layers, e.g. [{type: flatten}, {type: linear, out: 2}]");
  // Sizes past the machine's memory are refused before any allocation (Note [Input sizes]).
  CHECK(layers_error("[{type: conv2d, out: 1048576, kernel: 1, padding: 1048575}, {type: "
                     "global_avgpool}, {type: linear, out: 2}]")
            .starts_with("model.name = layers: the activations of 32 samples needs "));
  // Schema level: an unknown key inside an item names the key and the nearest valid one.
  CHECK(layers_error("[{type: conv2d, out: 2, kernal: 3}]") ==
        "<config>: unknown key 'kernal' in model.layers[0] (did you mean 'kernel'?) (valid here: "
        "type, in, out, kernel, stride, padding, bias, p, groups, affine)");
  CHECK(layers_error("[relu]") ==
        "<config>: model.layers[0] must be a mapping such as {type: relu}, got 'relu'");
  CHECK(layers_error("[{type: conv2d, out: [2, 3], kernel: 3}]") ==
        "<config>: model.layers[0].out must be a single value, got '[2, 3]'");
}
