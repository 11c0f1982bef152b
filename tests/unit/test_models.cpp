// Models: gradients against finite differences of an independent double-precision reference,
// hand-computed exact cases, layer layout, initialisation, evaluation and address independence.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/rng.h"
#include "model/model.h"

using cohort::Purpose;
using cohort::Rng;
using namespace cohort::model;

namespace {

struct Data {
  std::int64_t rows = 0, dim = 0;
  std::vector<float> x;
  std::vector<std::int32_t> labels;
  std::vector<float> targets;

  Batch batch() const {
    return Batch{x.data(), rows, dim, labels.empty() ? nullptr : labels.data(),
                 targets.empty() ? nullptr : targets.data()};
  }
};

// Standard normal features; labels in [0, classes) when classes > 0, else normal targets.
Data make_data(std::int64_t rows, std::int64_t dim, int classes, std::uint32_t seed) {
  Rng rng(1234, seed, 0, Purpose::kTest);
  Data d;
  d.rows = rows;
  d.dim = dim;
  for (std::int64_t i = 0; i < rows * dim; ++i) d.x.push_back(static_cast<float>(rng.normal()));
  for (std::int64_t i = 0; i < rows; ++i) {
    if (classes > 0)
      d.labels.push_back(static_cast<std::int32_t>(rng.below(classes)));
    else
      d.targets.push_back(static_cast<float>(rng.normal()));
  }
  return d;
}

std::vector<float> random_params(std::int64_t n, double stddev, std::uint32_t seed) {
  Rng rng(99, seed, 0, Purpose::kTest);
  std::vector<float> p(n);
  for (auto& v : p) v = static_cast<float>(rng.normal(0.0, stddev));
  return p;
}

// ---- Double-precision reference, written from the definitions, sharing no code with the
// models. Layout: each dense layer is its row-major (out x in) weights, then its out biases.

double ref_linear_loss(const std::vector<double>& p, const Data& d) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < d.rows; ++i) {
    double y = p[d.dim];
    for (std::int64_t j = 0; j < d.dim; ++j) y += p[j] * d.x[i * d.dim + j];
    sum += 0.5 * (y - d.targets[i]) * (y - d.targets[i]);
  }
  return sum / static_cast<double>(d.rows);
}

double ref_activation(Activation a, double z) {
  switch (a) {
    case Activation::kRelu:
      return z > 0.0 ? z : 0.0;
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kSigmoid:
      return 1.0 / (1.0 + std::exp(-z));
  }
  return 0.0;
}

// Logits of sample i for a dense network with the given widths (input, hidden..., classes).
std::vector<double> ref_logits(const std::vector<double>& p, const Data& d, std::int64_t i,
                               const std::vector<std::int64_t>& widths, Activation act) {
  std::vector<double> a(d.x.begin() + i * d.dim, d.x.begin() + (i + 1) * d.dim);
  std::size_t offset = 0;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    const std::int64_t in = widths[l], out = widths[l + 1];
    std::vector<double> z(out);
    for (std::int64_t o = 0; o < out; ++o) {
      double s = p[offset + out * in + o];
      for (std::int64_t k = 0; k < in; ++k) s += p[offset + o * in + k] * a[k];
      z[o] = l + 2 < widths.size() ? ref_activation(act, s) : s;
    }
    offset += out * in + out;
    a = z;
  }
  return a;
}

double ref_xent(const std::vector<double>& z, int label) {
  const double m = *std::max_element(z.begin(), z.end());
  double s = 0.0;
  for (double v : z) s += std::exp(v - m);
  return m + std::log(s) - z[label];
}

double ref_dense_loss(const std::vector<double>& p, const Data& d,
                      const std::vector<std::int64_t>& widths, Activation act) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < d.rows; ++i)
    sum += ref_xent(ref_logits(p, d, i, widths, act), d.labels[i]);
  return sum / static_cast<double>(d.rows);
}

using RefLoss = std::function<double(const std::vector<double>&)>;

// Compares the model's loss with the reference loss, and its gradient with central differences
// of the reference loss.
// Tolerances: the model runs in float32 (unit roundoff u = 6e-8). Its loss and gradient are
// short chains of dot products over at most a few dozen terms of size O(1), so their error is
// below ~100 u = 6e-6 absolute / relative to O(1) magnitudes. The double central difference has
// truncation error O(h^2) ~ 1e-10 and cancellation error ~ 1e-16 / h ~ 1e-11. Hence a relative
// bound of 1e-3 with an absolute floor of 1e-5 per coordinate: loose for rounding, but a wrong
// term (a missing factor, a transposed index, a dropped 1/rows) shows as an error of the size of
// the gradient itself. The test also requires the gradient to be far from zero.
void check_gradient(const Model& model, const std::vector<float>& params, const Data& data,
                    const RefLoss& ref) {
  std::vector<float> grad(model.num_params(), std::numeric_limits<float>::quiet_NaN());
  const double loss = model.loss_grad(params.data(), data.batch(), grad.data());
  std::vector<double> p(params.begin(), params.end());
  const double ref_loss = ref(p);
  INFO("model " << model.name() << " loss " << loss << " reference " << ref_loss);
  REQUIRE(std::abs(loss - ref_loss) <= 1e-5 * std::max(1.0, std::abs(ref_loss)));

  double max_fd = 0.0;
  for (std::size_t k = 0; k < p.size(); ++k) {
    const double h = 1e-5, saved = p[k];
    p[k] = saved + h;
    const double up = ref(p);
    p[k] = saved - h;
    const double down = ref(p);
    p[k] = saved;
    const double fd = (up - down) / (2 * h);
    max_fd = std::max(max_fd, std::abs(fd));
    const double tol = 1e-3 * std::abs(fd) + 1e-5;
    INFO("param " << k << " analytic " << grad[k] << " finite difference " << fd << " tolerance "
                  << tol);
    REQUIRE(std::abs(grad[k] - fd) <= tol);
  }
  REQUIRE(max_fd > 1e-2);
}

std::vector<std::int64_t> widths_of(std::int64_t dim, const std::vector<int>& hidden, int c) {
  std::vector<std::int64_t> w{dim};
  for (int h : hidden) w.push_back(h);
  w.push_back(c);
  return w;
}

}  // namespace

TEST_CASE("linear gradient matches finite differences", "[model]") {
  const auto model = make_linear(7);
  for (const std::int64_t rows : {1, 6}) {
    const Data data = make_data(rows, 7, 0, 1);
    const auto params = random_params(model->num_params(), 0.7, 2);
    check_gradient(*model, params, data, [&](const auto& p) { return ref_linear_loss(p, data); });
  }
}

TEST_CASE("logreg gradient matches finite differences", "[model]") {
  const auto model = make_logreg(7, 3);
  for (const std::int64_t rows : {1, 6}) {
    const Data data = make_data(rows, 7, 3, 3);
    const auto params = random_params(model->num_params(), 0.7, 4);
    check_gradient(*model, params, data, [&](const auto& p) {
      return ref_dense_loss(p, data, {7, 3}, Activation::kRelu);
    });
  }
}

TEST_CASE("mlp gradient matches finite differences for every activation", "[model]") {
  const std::vector<int> hidden{5, 4};
  for (const auto act : {Activation::kRelu, Activation::kTanh, Activation::kSigmoid}) {
    const auto model = make_mlp(7, 3, hidden, act);
    for (const std::int64_t rows : {1, 6}) {
      INFO("activation " << static_cast<int>(act) << " rows " << rows);
      const Data data = make_data(rows, 7, 3, 5);
      const auto params = random_params(model->num_params(), 0.7, 6);
      check_gradient(*model, params, data, [&](const auto& p) {
        return ref_dense_loss(p, data, widths_of(7, hidden, 3), act);
      });
    }
  }
}

TEST_CASE("mlp gradient matches finite differences at blocked-product sizes", "[model]") {
  // Every dimension here exceeds Eigen's small-product threshold, so the products take the
  // blocked GEMM path instead of the coefficient-based one used above.
  const std::vector<int> hidden{25};
  const auto model = make_mlp(30, 10, hidden, Activation::kTanh);
  const Data data = make_data(20, 30, 10, 7);
  const auto params = random_params(model->num_params(), 0.3, 8);
  check_gradient(*model, params, data, [&](const auto& p) {
    return ref_dense_loss(p, data, widths_of(30, hidden, 10), Activation::kTanh);
  });
}

TEST_CASE("linear exact hand-computed case", "[model]") {
  const auto model = make_linear(2);
  const std::vector<float> params{1.0f, 2.0f, 0.5f};  // w = (1, 2), b = 0.5
  const std::vector<float> x{1.0f, 1.0f}, t{3.0f};
  const Batch batch{x.data(), 1, 2, nullptr, t.data()};
  std::vector<float> grad(3, -7.0f);
  // y = 3.5, residual 0.5: loss 0.125, gradient residual * (x, 1).
  REQUIRE(model->loss_grad(params.data(), batch, grad.data()) == 0.125);
  REQUIRE(grad == std::vector<float>{0.5f, 0.5f, 0.5f});
  double loss_sum = -1.0;
  std::int64_t correct = -1;
  model->evaluate(params.data(), batch, &loss_sum, &correct);
  REQUIRE(loss_sum == 0.125);
  REQUIRE(correct == 0);
}

TEST_CASE("logreg with zero parameters: loss log C and closed-form gradient", "[model]") {
  // Zero parameters give softmax = 1/C, so dL/dz_ic = (1/C - [y_i = c]) / rows. With C = 4,
  // rows = 4 and small integer features every value is dyadic and the result is exact.
  const int classes = 4;
  const auto model = make_logreg(3, classes);
  const std::vector<float> params(model->num_params(), 0.0f);
  const std::vector<float> x{1, 2, -1, 0, 3, 4, -2, 1, 1, 5, 0, -3};
  const std::vector<std::int32_t> labels{0, 1, 3, 3};
  const Batch batch{x.data(), 4, 3, labels.data(), nullptr};
  std::vector<float> grad(model->num_params());
  const double loss = model->loss_grad(params.data(), batch, grad.data());
  REQUIRE(loss == Approx(std::log(4.0)).epsilon(1e-14));
  std::vector<float> expected(model->num_params(), 0.0f);
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < classes; ++c) {
      const double dz = (0.25 - (labels[i] == c ? 1.0 : 0.0)) / 4.0;
      for (int j = 0; j < 3; ++j) expected[c * 3 + j] += static_cast<float>(dz * x[i * 3 + j]);
      expected[classes * 3 + c] += static_cast<float>(dz);
    }
  REQUIRE(grad == expected);

  const auto ten = make_logreg(5, 10);
  const std::vector<float> zeros(ten->num_params(), 0.0f);
  const Data data = make_data(3, 5, 10, 9);
  REQUIRE(ten->loss_grad(zeros.data(), data.batch(), nullptr) ==
          Approx(std::log(10.0)).epsilon(1e-12));
}

TEST_CASE("layer views are contiguous and named", "[model]") {
  const auto big = make_mlp(784, 10, {200}, Activation::kRelu);
  REQUIRE(big->name() == "mlp");
  REQUIRE(big->num_params() == 784 * 200 + 200 + 200 * 10 + 10);
  REQUIRE(big->num_params() == 159010);

  const auto mlp = make_mlp(7, 3, {5, 4}, Activation::kTanh);
  const std::vector<std::string> names{"fc1.w", "fc1.b", "fc2.w", "fc2.b", "out.w", "out.b"};
  const std::vector<std::int64_t> rows{5, 5, 4, 4, 3, 3}, cols{7, 1, 5, 1, 4, 1};
  const auto& layers = mlp->layers();
  REQUIRE(layers.size() == names.size());
  std::int64_t offset = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    REQUIRE(layers[l].name == names[l]);
    REQUIRE(layers[l].offset == offset);
    REQUIRE(layers[l].rows == rows[l]);
    REQUIRE(layers[l].cols == cols[l]);
    offset += layers[l].size();
  }
  REQUIRE(mlp->num_params() == offset);
  REQUIRE(offset == 35 + 5 + 20 + 4 + 12 + 3);

  const auto lin = make_linear(9);
  REQUIRE(lin->layers().size() == 2);
  REQUIRE(lin->layers()[0].name == "w");
  REQUIRE(lin->layers()[0].rows == 1);
  REQUIRE(lin->layers()[1].offset == 9);
  REQUIRE(lin->num_params() == 10);
  const auto lr = make_logreg(9, 4);
  REQUIRE(lr->layers()[0].rows == 4);
  REQUIRE(lr->layers()[1].name == "b");
  REQUIRE(lr->layers()[1].offset == 36);
  REQUIRE(lr->num_params() == 40);
}

TEST_CASE("init: zeros for linear and logreg, He or Glorot uniform for mlp", "[model]") {
  Rng rng(5, 0, cohort::kGlobalClient, Purpose::kModelInit);
  const auto lin = make_linear(4);
  std::vector<float> p(lin->num_params(), 1.0f);
  lin->init(p.data(), rng);
  REQUIRE(p == std::vector<float>(5, 0.0f));
  const auto lr = make_logreg(4, 3);
  p.assign(lr->num_params(), 1.0f);
  lr->init(p.data(), rng);
  REQUIRE(p == std::vector<float>(15, 0.0f));

  for (const auto act : {Activation::kRelu, Activation::kSigmoid}) {
    const auto mlp = make_mlp(6, 3, {4}, act);
    std::vector<float> params(mlp->num_params(), 1.0f);
    Rng a(7, 0, cohort::kGlobalClient, Purpose::kModelInit);
    mlp->init(params.data(), a);
    // The same draws by hand: fc1.w (4 x 6), then out.w (3 x 4), biases zero.
    Rng b(7, 0, cohort::kGlobalClient, Purpose::kModelInit);
    const bool relu = act == Activation::kRelu;
    const double a1 = relu ? std::sqrt(6.0 / 6) : std::sqrt(6.0 / 10);
    const double a2 = relu ? std::sqrt(6.0 / 4) : std::sqrt(6.0 / 7);
    std::vector<float> expected;
    for (int i = 0; i < 24; ++i) expected.push_back(static_cast<float>(b.uniform(-a1, a1)));
    for (int i = 0; i < 4; ++i) expected.push_back(0.0f);
    for (int i = 0; i < 12; ++i) expected.push_back(static_cast<float>(b.uniform(-a2, a2)));
    for (int i = 0; i < 3; ++i) expected.push_back(0.0f);
    REQUIRE(params == expected);
  }
}

TEST_CASE("evaluate counts argmax hits and sums per-sample losses", "[model]") {
  // w = [[1, 0], [0, 1], [0, 0]], b = 0: logits (x0, x1, 0).
  const auto model = make_logreg(2, 3);
  const std::vector<float> params{1, 0, 0, 1, 0, 0, 0, 0, 0};
  const std::vector<float> x{2, 1, 1, 3, -1, -1, 1, 1};
  // argmax: 0, 1, 2, and a tie between 0 and 1 that goes to 0.
  const std::vector<std::int32_t> labels{0, 1, 0, 0};
  const Batch batch{x.data(), 4, 2, labels.data(), nullptr};
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  model->evaluate(params.data(), batch, &loss_sum, &correct);
  REQUIRE(correct == 3);
  const double expected = ref_xent({2, 1, 0}, 0) + ref_xent({1, 3, 0}, 1) +
                          ref_xent({-1, -1, 0}, 0) + ref_xent({1, 1, 0}, 0);
  REQUIRE(loss_sum == Approx(expected).epsilon(1e-6));
  REQUIRE(loss_sum == Approx(4 * model->loss_grad(params.data(), batch, nullptr)).epsilon(1e-12));
}

TEST_CASE("evaluate agrees with loss_grad and with sample-by-sample evaluation", "[model]") {
  // 1100 rows cross evaluate's chunk boundary.
  const auto mlp = make_mlp(6, 4, {8}, Activation::kSigmoid);
  const Data data = make_data(1100, 6, 4, 10);
  const auto params = random_params(mlp->num_params(), 1.0, 11);
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  mlp->evaluate(params.data(), data.batch(), &loss_sum, &correct);
  const double mean = mlp->loss_grad(params.data(), data.batch(), nullptr);
  REQUIRE(loss_sum == Approx(1100 * mean).epsilon(1e-6));
  double one_by_one = 0.0;
  std::int64_t hits = 0;
  for (std::int64_t i = 0; i < data.rows; ++i) {
    const Batch one{data.x.data() + i * 6, 1, 6, data.labels.data() + i, nullptr};
    double l = 0.0;
    std::int64_t c = 0;
    mlp->evaluate(params.data(), one, &l, &c);
    one_by_one += l;
    hits += c;
  }
  REQUIRE(correct == hits);
  REQUIRE(correct > 275);  // better than the 1/4 of chance would make a miscount unlikely
  REQUIRE(loss_sum == Approx(one_by_one).epsilon(1e-6));

  const auto lin = make_linear(5);
  const Data reg = make_data(700, 5, 0, 12);
  const auto lp = random_params(lin->num_params(), 1.0, 13);
  lin->evaluate(lp.data(), reg.batch(), &loss_sum, &correct);
  REQUIRE(correct == 0);
  REQUIRE(loss_sum == Approx(700 * lin->loss_grad(lp.data(), reg.batch(), nullptr)).epsilon(1e-12));
}

TEST_CASE("results depend only on the contents of params and batch", "[model]") {
  // Note [Address-independent results]: the same values at other addresses, and other batches
  // in between, must give bit-identical losses and gradients.
  struct Case {
    std::unique_ptr<Model> model;
    std::int64_t rows, dim;
    int classes;
  };
  std::vector<Case> cases;
  cases.push_back({make_mlp(7, 3, {5, 4}, Activation::kTanh), 6, 7, 3});
  cases.push_back({make_mlp(33, 10, {21}, Activation::kSigmoid), 17, 33, 10});
  cases.push_back({make_logreg(5, 3), 3, 5, 3});
  cases.push_back({make_linear(5), 3, 5, 0});
  for (const auto& c : cases) {
    const Model& m = *c.model;
    const Data data = make_data(c.rows, c.dim, c.classes, 14);
    const auto params = random_params(m.num_params(), 0.5, 15);
    std::vector<float> grad(m.num_params());
    const double loss = m.loss_grad(params.data(), data.batch(), grad.data());
    for (int shift = 1; shift < 4; ++shift) {
      const Data other = make_data(c.rows + shift, c.dim, c.classes, 16);
      std::vector<float> scratch(m.num_params());
      m.loss_grad(params.data(), other.batch(), scratch.data());
      // Copies of params, features and the gradient output at an offset of `shift` floats.
      std::vector<float> p2(m.num_params() + shift), x2(data.x.size() + shift),
          g2(m.num_params() + shift);
      std::copy(params.begin(), params.end(), p2.begin() + shift);
      std::copy(data.x.begin(), data.x.end(), x2.begin() + shift);
      Batch moved = data.batch();
      moved.x = x2.data() + shift;
      INFO("model " << m.name() << " shift " << shift);
      REQUIRE(m.loss_grad(p2.data() + shift, moved, g2.data() + shift) == loss);
      std::int64_t differ = 0, first = -1;
      for (std::size_t k = 0; k < grad.size(); ++k)
        if (g2[shift + k] != grad[k]) {
          if (differ++ == 0) first = static_cast<std::int64_t>(k);
        }
      INFO(differ << " gradient entries differ, first at " << first);
      REQUIRE(differ == 0);
      REQUIRE(m.loss_grad(params.data(), data.batch(), nullptr) == loss);
    }
  }
}

TEST_CASE("empty batches, bad batches and bad arguments", "[model]") {
  const auto mlp = make_mlp(4, 3, {5}, Activation::kRelu);
  const auto params = random_params(mlp->num_params(), 0.5, 17);
  std::vector<float> grad(mlp->num_params(), 3.0f);
  const Batch empty{nullptr, 0, 4, nullptr, nullptr};
  REQUIRE(mlp->loss_grad(params.data(), empty, grad.data()) == 0.0);
  REQUIRE(grad == std::vector<float>(grad.size(), 0.0f));

  Data data = make_data(2, 4, 3, 18);
  Batch wrong_dim = data.batch();
  wrong_dim.dim = 5;
  REQUIRE_THROWS_AS(mlp->loss_grad(params.data(), wrong_dim, nullptr), std::invalid_argument);
  data.labels[1] = 3;
  REQUIRE_THROWS_AS(mlp->loss_grad(params.data(), data.batch(), nullptr), std::out_of_range);
  const Data reg = make_data(2, 4, 0, 19);
  Batch no_targets = reg.batch();
  no_targets.targets = nullptr;
  REQUIRE_THROWS_AS(make_linear(4)->loss_grad(params.data(), no_targets, nullptr),
                    std::invalid_argument);

  REQUIRE_THROWS_AS(make_mlp(4, 3, {5, 0}, Activation::kTanh), cohort::UsageError);
  REQUIRE_THROWS_AS(make_logreg(4, 1), cohort::UsageError);
  REQUIRE_THROWS_AS(make_linear(0), cohort::UsageError);
}
