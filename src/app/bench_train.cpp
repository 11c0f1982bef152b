// `cohort bench train`: one thread's training throughput of the convolutional and dense models
// at a fixed batch, beside the single-thread sgemm rate that Eigen reaches in this build.
#include <fmt/format.h>

#include <Eigen/Core>

#include "model/gemm.h"
#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/bench.h"
#include "core/isa.h"
#include "core/rng.h"
#include "model/layer_model.h"

namespace cohort {
namespace {

using Clock = std::chrono::steady_clock;

// Best time of `repeats` runs of f, each after one untimed warm-up call.
double best_seconds(int repeats, const std::function<void()>& f) {
  f();
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

std::vector<float> normal_values(std::int64_t n, std::uint32_t stream) {
  Rng rng(42, stream, 0, Purpose::kTest);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// C = A B with row-major float32 matrices, through the models' product on the path in use
// (Note [Model GEMM paths]): GFLOP/s of 2 m n k.
double measure_sgemm(std::int64_t m, std::int64_t n, std::int64_t k, int repeats) {
  const std::vector<float> a = normal_values(m * k, 1), b = normal_values(k * n, 2);
  std::vector<float> c(static_cast<std::size_t>(m * n));
  const double t = best_seconds(
      repeats, [&] { model::detail::gemm(false, false, m, n, k, a.data(), b.data(), false, c.data()); });
  return 2.0 * static_cast<double>(m * n * k) / t / 1e9;
}

struct Row {
  std::string what;
  double seconds = 0, flops = 0;  // per batch
  std::int64_t batch = 0;
};

// A training step (loss and gradient, dropout drawing from a stream) of `model` on a batch.
Row time_step(const std::string& what, const model::Model& m, data::Shape shape, double flops,
              std::int64_t batch, int repeats) {
  const std::vector<float> x = normal_values(batch * shape.size(), 3);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) labels[static_cast<std::size_t>(i)] = i % 10;
  std::vector<float> params(static_cast<std::size_t>(m.num_params())), grad(params.size());
  Rng init(1, 0, kGlobalClient, Purpose::kModelInit);
  m.init(params.data(), init);
  model::Batch b{x.data(), batch, shape.size(), labels.data(), nullptr};
  b.shape = shape;
  Rng rng(1, 1, 0, Purpose::kDataGeneration);
  const double t = best_seconds(repeats, [&] { m.loss_grad(params.data(), b, grad.data(), &rng); });
  return Row{what, t, flops * static_cast<double>(batch), batch};
}

// One layer's forward and backward (with dx) on a batch, timed apart.
std::vector<Row> time_layer(const std::string& name, model::Layer& layer, std::int64_t batch,
                            int repeats) {
  std::vector<LayerView> views;
  layer.add_params(views, name);
  std::vector<float> params(static_cast<std::size_t>(layer.num_params())), grad(params.size());
  Rng init(1, 0, kGlobalClient, Purpose::kModelInit);
  layer.init(params.data(), init);
  const std::vector<float> x = normal_values(batch * layer.in_shape().size(), 4),
                           dy = normal_values(batch * layer.out_shape().size(), 5);
  std::vector<float> y(dy.size()), dx(x.size());
  const model::Pass pass{};
  const double tf =
      best_seconds(repeats, [&] { layer.forward(params.data(), x.data(), batch, y.data(), pass); });
  const double tb = best_seconds(repeats, [&] {
    layer.backward(params.data(), x.data(), y.data(), dy.data(), batch, grad.data(), dx.data());
  });
  const auto b = static_cast<double>(batch);
  return {Row{name + " forward", tf, layer.forward_flops() * b, batch},
          Row{name + " backward", tb, layer.backward_flops(true) * b, batch}};
}

}  // namespace

int run_train_bench(const BenchOptions& o) {
  const std::int64_t batch = 32;
  const int repeats = std::max(o.repeats, 3);
  const double sgemm = measure_sgemm(512, 512, 512, repeats);
  const double sgemm_conv = measure_sgemm(64, 576, 288, repeats * 10);
  fmt::print("# cohort bench train: one thread, batch {}, best of {} after a warm-up\n", batch,
             repeats);
  fmt::print("# CPU ISA {}; model products on the {} path (Note [Model GEMM paths]; COHORT_ISA "
             "forces it); Eigen {}.{}.{}\n",
             isa_name(cpu_isa()), isa_name(model::detail::gemm_isa()), EIGEN_WORLD_VERSION,
             EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
  fmt::print(
      "# sgemm (Eigen, row-major float32, that path): 512x512x512 {:.1f} GFLOP/s; "
      "64x576x288 (conv2 of cnn_mnist, one sample) {:.1f} GFLOP/s\n",
      sgemm, sgemm_conv);

  std::vector<Row> rows;
  const data::Shape mnist{1, 28, 28};
  const auto cnn = model::make_cnn_mnist(mnist, 10);
  rows.push_back(time_step("cnn_mnist step", *cnn, mnist,
                           cnn->forward_flops() + cnn->backward_flops(), batch, repeats));
  const auto lenet = model::make_lenet5(mnist, 10);
  rows.push_back(time_step("lenet5 step", *lenet, mnist,
                           lenet->forward_flops() + lenet->backward_flops(), batch, repeats));
  const auto resnet = model::make_resnet(mnist, 10, 3, 2);
  rows.push_back(time_step("resnet20 step (28x28)", *resnet, mnist,
                           resnet->forward_flops() + resnet->backward_flops(), batch, repeats));
  // The quickstart MLP: 784 -> 128 (relu) -> 10; forward 2(784·128 + 128·10) per sample, the
  // backward the same for the weight gradients plus 2·128·10 for the hidden layer's gradient.
  const auto mlp = model::make_mlp(784, 10, {128}, model::Activation::kRelu);
  const double mlp_fwd = 2.0 * (784.0 * 128 + 128.0 * 10);
  rows.push_back(time_step("mlp [128] step", *mlp, data::Shape{784, 1, 1},
                           mlp_fwd + mlp_fwd + 2.0 * 128 * 10, batch, repeats));
  auto conv1 = model::make_conv2d(mnist, 32, 3, 1, 0, true);
  auto conv2 = model::make_conv2d({32, 26, 26}, 64, 3, 1, 0, true);
  auto fc1 = model::make_linear_layer({64, 12, 12}, 128);
  for (auto& r : time_layer("cnn_mnist conv1", *conv1, batch, repeats)) rows.push_back(r);
  for (auto& r : time_layer("cnn_mnist conv2", *conv2, batch, repeats)) rows.push_back(r);
  for (auto& r : time_layer("cnn_mnist fc1", *fc1, batch, repeats)) rows.push_back(r);
  // resnet20's distinct convolutions on 3×32×32 (CIFAR), as scripts/bench_onednn.cpp times them.
  struct ConvShape {
    const char* name;
    std::int64_t c, h, o, k, s, p;
  };
  for (const ConvShape& c : {ConvShape{"resnet20 stem 3-16", 3, 32, 16, 3, 1, 1},
                             ConvShape{"resnet20 16-16", 16, 32, 16, 3, 1, 1},
                             ConvShape{"resnet20 16-32 /2", 16, 32, 32, 3, 2, 1},
                             ConvShape{"resnet20 32-32", 32, 16, 32, 3, 1, 1},
                             ConvShape{"resnet20 32-64 /2", 32, 16, 64, 3, 2, 1},
                             ConvShape{"resnet20 64-64", 64, 8, 64, 3, 1, 1},
                             ConvShape{"resnet20 shortcut 16-32 1x1 /2", 16, 32, 32, 1, 2, 0},
                             ConvShape{"resnet20 shortcut 32-64 1x1 /2", 32, 16, 64, 1, 2, 0}}) {
    auto layer = model::make_conv2d({c.c, c.h, c.h}, c.o, c.k, c.s, c.p, true);
    for (auto& r : time_layer(c.name, *layer, batch, repeats)) rows.push_back(r);
  }

  fmt::print("{:<40} {:>10} {:>12} {:>10} {:>9}\n", "what", "ms/batch", "samples/s", "GFLOP/s",
             "% sgemm");
  std::string json = "[";
  for (const Row& r : rows) {
    const double gflops = r.flops / r.seconds / 1e9;
    fmt::print("{:<40} {:>10.3f} {:>12.0f} {:>10.2f} {:>8.0f}%\n", r.what, r.seconds * 1e3,
               static_cast<double>(r.batch) / r.seconds, gflops, 100.0 * gflops / sgemm);
    json += fmt::format(R"({}{{"what": "{}", "seconds": {:.6g}, "gflops": {:.4g}}})",
                        json.size() > 1 ? ", " : "", r.what, r.seconds, gflops);
  }
  json += "]";
  if (!o.json.empty())
    std::ofstream(o.json)
        << fmt::format(
               R"({{"batch": {}, "sgemm_gflops": {:.4g}, "isa": "{}", "gemm_path": "{}", "rows": {}}})",
               batch, sgemm, isa_name(cpu_isa()), isa_name(model::detail::gemm_isa()), json)
        << "\n";
  return 0;
}

}  // namespace cohort
