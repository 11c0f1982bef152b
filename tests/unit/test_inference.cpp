// The inference attacks (docs/algorithms.md §6): membership AUC against hand-computed cases and
// every pair counted directly; gradient inversion of a fully connected first layer, exact on one
// sample, a reported error on a batch, and defeated by dp_sgd's noise.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "model/model.h"
#include "privacy/dp_sgd.h"
#include "privacy/inference.h"

using namespace cohort;

TEST_CASE("privacy: membership AUC: hand-computed cases, ties count one half", "[privacy]") {
  using privacy::membership_auc;
  REQUIRE(membership_auc({1, 2}, {3, 4}) == 1.0);
  REQUIRE(membership_auc({3, 4}, {1, 2}) == 0.0);
  // (1<2, 1<4, 3>2, 3<4): 3 of 4 pairs.
  REQUIRE(membership_auc({1, 3}, {2, 4}) == 0.75);
  // (1<2, 1<3, 2=2, 2<3): 3.5 of 4.
  REQUIRE(membership_auc({1, 2}, {2, 3}) == 0.875);
  REQUIRE(membership_auc({5, 5, 5}, {5, 5}) == 0.5);
  // One member against three: above, tied, below.
  REQUIRE(membership_auc({1}, {0, 1, 2}) == 0.5);
  REQUIRE(membership_auc({0.5, 0.5, 2}, {1}) == Approx(2.0 / 3.0));
  // Random losses with many ties against the count over every pair.
  Rng rng(3, 0, 0, Purpose::kTest);
  std::vector<double> a, b;
  for (int i = 0; i < 300; ++i) a.push_back(static_cast<double>(rng.below(20)));
  for (int i = 0; i < 200; ++i) b.push_back(static_cast<double>(rng.below(25)));
  double wins = 0;
  for (double x : a)
    for (double y : b) wins += x < y ? 1.0 : x == y ? 0.5 : 0.0;
  REQUIRE(membership_auc(a, b) == wins / (300.0 * 200.0));
}

namespace {

// Client-like data: `rows` samples of 30 features in [0, 1], 4 classes.
struct Data {
  std::vector<float> x;
  std::vector<std::int32_t> y;
};
Data make_data(std::int64_t rows) {
  Rng rng(5, 1, 0, Purpose::kTest);
  Data d;
  for (std::int64_t i = 0; i < rows * 30; ++i) d.x.push_back(static_cast<float>(rng.uniform()));
  for (std::int64_t i = 0; i < rows; ++i) d.y.push_back(static_cast<std::int32_t>(rng.below(4)));
  return d;
}

}  // namespace

TEST_CASE("privacy: gradient inversion recovers one sample exactly and fails under dp_sgd's noise",
          "[privacy]") {
  const Data data = make_data(8);
  for (const bool mlp : {false, true}) {
    INFO((mlp ? "mlp" : "logreg"));
    auto model = mlp ? model::make_mlp(30, 4, {16}, model::Activation::kRelu)
                     : model::make_logreg(30, 4);
    std::vector<float> p(static_cast<std::size_t>(model->num_params()));
    Rng init(2, 0, 0, Purpose::kModelInit);
    model->init(p.data(), init);
    std::vector<float> g(p.size());
    const auto& w = model->layers()[0];
    auto invert = [&] {
      return privacy::invert_dense(g.data() + w.offset, g.data() + w.offset + w.size(), w.rows,
                                   w.cols);
    };
    // One sample: exact to float32 rounding.
    model::Batch one{data.x.data(), 1, 30, data.y.data(), nullptr};
    model->loss_grad(p.data(), one, g.data());
    auto rec = invert();
    REQUIRE(rec.row >= 0);
    auto e = privacy::reconstruction_error(rec.x.data(), data.x.data(), 30);
    REQUIRE(e.relative < 1e-5);
    REQUIRE(e.max_abs < 1e-5);
    // Clipping alone scales both parts alike: still exact.
    model->clipped_loss_grad(p.data(), one, 1e-3, 1.0, g.data());
    e = privacy::reconstruction_error(invert().x.data(), data.x.data(), 30);
    REQUIRE(e.relative < 1e-5);
    // dp_sgd's noise (sigma = 1, C = 1, B = 1): the ratio of noisy values is far from the input.
    privacy::DpSgdOptions o;
    o.enabled = true;
    o.clip = 1;
    o.sigma = 1;
    o.q = 1;
    privacy::DpSgdSteps steps(o, 4, 0, 0, 1);
    model->clipped_loss_grad(p.data(), one, o.clip, steps.denominator(), g.data());
    steps.add_noise(g.data(), model->num_params());
    e = privacy::reconstruction_error(invert().x.data(), data.x.data(), 30);
    REQUIRE(e.relative > 0.5);
    // A batch of 8: a mixture of the inputs, away from each of them.
    model::Batch eight{data.x.data(), 8, 30, data.y.data(), nullptr};
    model->loss_grad(p.data(), eight, g.data());
    rec = invert();
    double nearest = INFINITY;
    for (int i = 0; i < 8; ++i)
      nearest = std::min(nearest, privacy::reconstruction_error(rec.x.data(),
                                                                data.x.data() + 30 * i, 30)
                                      .relative);
    REQUIRE(nearest > 1e-3);
  }
  // All bias gradients 0: nothing to invert.
  std::vector<float> gw(6, 1.0f), gb(2, 0.0f);
  REQUIRE(privacy::invert_dense(gw.data(), gb.data(), 2, 3).row == -1);
}
