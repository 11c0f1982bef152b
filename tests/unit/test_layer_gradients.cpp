// The layer engine's gradients (docs/models.md): every layer and each named model against
// central finite differences of the independent float64 reference in layer_reference.h.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "layer_reference.h"
#include "model/layer_model.h"

using namespace cohort::test::layers;

namespace {

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

TEST_CASE("a batch larger than one pass's chunk adds the chunks' gradients", "[layers]") {
  // 70 rows: passes of 32, 32 and 6 rows, their gradients added in order.
  const Shape in{2, 5, 5};
  const std::vector<LayerSpec> specs = {{{"type", "conv2d"}, {"out", "3"}, {"kernel", "3"}},
                                        {{"type", "relu"}},
                                        {{"type", "maxpool"}, {"kernel", "2"}},
                                        {{"type", "linear"}, {"out", "3"}}};
  LayerModel model("test", in, 3, build_stack(in, specs));
  check_gradient(model, specs, make_images(in, 70, 3, 7), 0, 7);
}

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
