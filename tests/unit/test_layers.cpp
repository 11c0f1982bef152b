// The layer engine (docs/models.md): output shapes against hand-computed ones, the named models'
// sizes, hand-computed forward values, dropout keyed by its stream and off in evaluation,
// separate scratch per instance, and the errors of a model.layers list that does not fit.
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
#include "layer_reference.h"
#include "model/layer_model.h"
#include "test_support.h"

using cohort::LayerView;
using namespace cohort::test::layers;

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
  CHECK(layers_error("[{out: 3}]") ==
        "model.layers[0]: needs key 'type' (one of conv2d, maxpool, avgpool, global_avgpool, relu, "
        "tanh, dropout, groupnorm, flatten, linear, residual)");
  CHECK(layers_error("[{type: batchnorm}]") ==
        "model.layers[0]: batch normalisation is not offered: its running statistics are "
        "ill-defined across non-IID clients; use {type: groupnorm, groups: G} (docs/models.md)");
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
