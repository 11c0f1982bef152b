// oneDNN's convolutions on the conv layers of cnn_mnist and resnet20 at batch 32, one thread:
// forward (training), backward data and backward weights (with bias), best of `repeats` after a
// warm-up. Two layouts: the plain ones cohort's flat buffer holds (nchw activations, oihw
// weights) and the ones oneDNN picks (format `any`, reorders not counted). Built and run by
// scripts/bench_onednn.sh beside `cohort bench train`, which times the same layers with
// im2col + Eigen. Output: one JSON object per line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Conv {
  const char* name;
  memory::dim c, h, w, o, k, s, p;
};

double best_ms(int repeats, const std::function<void()>& f) {
  f();
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - t0)
                              .count());
  }
  return best;
}

memory filled(const memory::desc& d, const engine& eng, float v) {
  memory m(d, eng);
  float* p = static_cast<float*>(m.get_data_handle());
  const std::size_t n = d.get_size() / sizeof(float);
  for (std::size_t i = 0; i < n; ++i) p[i] = v * static_cast<float>((i * 7919) % 13) - 0.3f;
  return m;
}

void run(const Conv& cv, bool plain, const engine& eng, stream& st, int repeats) {
  const memory::dim n = 32;
  const memory::dim ho = (cv.h + 2 * cv.p - cv.k) / cv.s + 1, wo = (cv.w + 2 * cv.p - cv.k) / cv.s + 1;
  const tag act = plain ? tag::nchw : tag::any, wt = plain ? tag::oihw : tag::any;
  const memory::desc src({n, cv.c, cv.h, cv.w}, dt::f32, act);
  const memory::desc wei({cv.o, cv.c, cv.k, cv.k}, dt::f32, wt);
  const memory::desc bia({cv.o}, dt::f32, tag::x);
  const memory::desc dst({n, cv.o, ho, wo}, dt::f32, act);
  const memory::dims strides = {cv.s, cv.s}, pad = {cv.p, cv.p};
  const convolution_forward::primitive_desc fwd(
      convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, src,
                                wei, bia, dst, strides, pad, pad),
      eng);
  const convolution_backward_data::primitive_desc bwd_data(
      convolution_backward_data::desc(algorithm::convolution_direct, src, wei, dst, strides, pad,
                                      pad),
      eng, fwd);
  const convolution_backward_weights::primitive_desc bwd_w(
      convolution_backward_weights::desc(algorithm::convolution_direct, src, wei, bia, dst,
                                         strides, pad, pad),
      eng, fwd);
  memory s = filled(fwd.src_desc(), eng, 0.1f), w = filled(fwd.weights_desc(), eng, 0.05f),
         b = filled(fwd.bias_desc(), eng, 0.0f), d = filled(fwd.dst_desc(), eng, 0.0f);
  memory dd = filled(bwd_data.diff_dst_desc(), eng, 0.02f),
         ds = filled(bwd_data.diff_src_desc(), eng, 0.0f),
         wd = filled(bwd_data.weights_desc(), eng, 0.05f);
  memory s2 = filled(bwd_w.src_desc(), eng, 0.1f), dd2 = filled(bwd_w.diff_dst_desc(), eng, 0.02f),
         dw = filled(bwd_w.diff_weights_desc(), eng, 0.0f),
         db = filled(bwd_w.diff_bias_desc(), eng, 0.0f);
  convolution_forward f(fwd);
  convolution_backward_data bd(bwd_data);
  convolution_backward_weights bw(bwd_w);
  const double tf = best_ms(repeats, [&] {
    f.execute(st, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, d}});
    st.wait();
  });
  const double tbd = best_ms(repeats, [&] {
    bd.execute(st, {{DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_WEIGHTS, wd}, {DNNL_ARG_DIFF_SRC, ds}});
    st.wait();
  });
  const double tbw = best_ms(repeats, [&] {
    bw.execute(st, {{DNNL_ARG_SRC, s2},
                    {DNNL_ARG_DIFF_DST, dd2},
                    {DNNL_ARG_DIFF_WEIGHTS, dw},
                    {DNNL_ARG_DIFF_BIAS, db}});
    st.wait();
  });
  const double flops = 2.0 * n * cv.o * cv.c * cv.k * cv.k * ho * wo;
  std::printf(
      "{\"layer\": \"%s\", \"layout\": \"%s\", \"forward_ms\": %.4f, \"backward_ms\": %.4f, "
      "\"forward_gflops\": %.3f, \"backward_gflops\": %.3f, \"impl\": \"%s\"}\n",
      cv.name, plain ? "nchw/oihw" : "any", tf, tbd + tbw, flops / tf / 1e6,
      2.0 * flops / (tbd + tbw) / 1e6, fwd.impl_info_str());
}

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::stoi(argv[1]) : 10;
  engine eng(engine::kind::cpu, 0);
  stream st(eng);
  // cnn_mnist on 1x28x28; resnet20 on 3x32x32 (CIFAR): its distinct convolutions.
  const std::vector<Conv> convs = {
      {"cnn_mnist conv1", 1, 28, 28, 32, 3, 1, 0},
      {"cnn_mnist conv2", 32, 26, 26, 64, 3, 1, 0},
      {"resnet20 stem 3-16", 3, 32, 32, 16, 3, 1, 1},
      {"resnet20 16-16", 16, 32, 32, 16, 3, 1, 1},
      {"resnet20 16-32 /2", 16, 32, 32, 32, 3, 2, 1},
      {"resnet20 32-32", 32, 16, 16, 32, 3, 1, 1},
      {"resnet20 32-64 /2", 32, 16, 16, 64, 3, 2, 1},
      {"resnet20 64-64", 64, 8, 8, 64, 3, 1, 1},
      {"resnet20 shortcut 16-32 1x1 /2", 16, 32, 32, 32, 1, 2, 0},
      {"resnet20 shortcut 32-64 1x1 /2", 32, 16, 16, 64, 1, 2, 0},
  };
  for (const Conv& c : convs)
    for (bool plain : {true, false}) run(c, plain, eng, st, repeats);
  return 0;
}
