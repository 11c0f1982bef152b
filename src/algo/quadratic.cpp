#include "algo/quadratic.h"

#include <cmath>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/limits.h"

namespace cohort::algo {

QuadraticProblem::QuadraticProblem(int num_clients, std::int64_t dim, std::vector<double> h,
                                   std::vector<double> a, double noise, double x0, bool record_x)
    : num_clients_(num_clients), dim_(dim), h_(std::move(h)), a_(std::move(a)), noise_(noise),
      x0_(x0), record_x_(record_x) {
  layers_ = {LayerView{"x", 0, dim_, 1}};
  optimum_.assign(static_cast<std::size_t>(dim_), 0.0);
  for (std::int64_t j = 0; j < dim_; ++j) {
    double num = 0, den = 0;
    for (int c = 0; c < num_clients_; ++c) {
      num += h_[c * dim_ + j] * a_[c * dim_ + j];
      den += h_[c * dim_ + j];
    }
    optimum_[j] = num / den;
  }
}

// A list of num_clients values is broadcast over dim; num_clients*dim values are used as is.
static std::vector<double> expand(const std::vector<double>& v, int n, std::int64_t dim,
                                  const char* key) {
  if (static_cast<std::int64_t>(v.size()) == n * dim) return v;
  if (static_cast<int>(v.size()) == n) {
    std::vector<double> out;
    for (int c = 0; c < n; ++c) out.insert(out.end(), static_cast<std::size_t>(dim), v[c]);
    return out;
  }
  throw UsageError(fmt::format(
      "data.{} has {} values; expected clients.num_clients = {} (one per client) or "
      "num_clients*dim = {}, or [] for random values",
      key, v.size(), n, n * dim));
}

std::unique_ptr<QuadraticProblem> QuadraticProblem::from_config(const Config& cfg) {
  const int n = static_cast<int>(cfg.get_int("clients.num_clients"));
  const std::int64_t dim = cfg.get_int("data.dim");
  const auto seed = static_cast<std::uint64_t>(cfg.get_int("seed"));
  std::vector<double> h = cfg.get_float_list("data.h"), a = cfg.get_float_list("data.a");
  const double h_min = cfg.get_float("data.h_min"), h_max = cfg.get_float("data.h_max");
  require_usage(h_min <= h_max, fmt::format("data.h_min = {} must not exceed data.h_max = {}",
                                            h_min, h_max));
  // h and a hold num_clients x dim doubles each (Note [Input sizes]).
  const std::string what = fmt::format("data.name = quadratic ({} clients x dim {})", n, dim);
  require_memory(checked_mul(checked_mul(n, dim, what), 2 * sizeof(double), what), what);
  Rng rng(seed, 0, kGlobalClient, Purpose::kDataGeneration);
  if (h.empty())
    for (std::int64_t i = 0; i < n * dim; ++i) h.push_back(rng.uniform(h_min, h_max));
  if (a.empty())
    for (std::int64_t i = 0; i < n * dim; ++i) a.push_back(rng.normal());
  h = expand(h, n, dim, "h");
  a = expand(a, n, dim, "a");
  for (double v : h)
    require_usage(v > 0 && std::isfinite(v),
                  fmt::format("data.h: curvature {} is not allowed: expected finite values > 0", v));
  const bool record_x = cfg.get_bool("data.record_x");
  require_usage(!record_x || dim <= kMaxRecordedDim,
                fmt::format("data.record_x records one metric per coordinate: data.dim = {} must "
                            "be at most {} with it",
                            dim, kMaxRecordedDim));
  return std::make_unique<QuadraticProblem>(n, dim, std::move(h), std::move(a),
                                            cfg.get_float("data.noise"), cfg.get_float("data.x0"),
                                            record_x);
}

ProblemRegistration quadratic_registration() {
  return {"quadratic",
          "clients f_i(x) = 1/2 (x - a_i)' H_i (x - a_i), H_i diagonal; optimum known",
          {opt_int("dim", 10, "dimension of x", 1),
           opt_float_list("h", "[]",
                          "diagonals of H_i: num_clients values (H_i = h_i I) or num_clients*dim, "
                          "client after client (per-coordinate curvatures: elliptic contours); "
                          "empty: uniform in [h_min, h_max]"),
           opt_float_list("a", "[]",
                          "centres a_i: num_clients values (every coordinate) or num_clients*dim, "
                          "client after client; empty: N(0, 1)"),
           opt_float("h_min", 1.0, "smallest random curvature", 0, INFINITY, true),
           opt_float("h_max", 10.0, "largest random curvature", 0, INFINITY, true),
           opt_float("noise", 0.0, "std of Gaussian noise added to each gradient coordinate", 0),
           opt_float("x0", 1.0, "initial value of every coordinate of x"),
           opt_bool("record_x", false,
                    "also record the coordinates of x as metrics /rounds/x_0 .. x_{dim-1} at "
                    "every evaluation (the iterate path; dim at most 16)")},
          [](const Config& cfg) -> std::unique_ptr<Problem> {
            const std::string m = cfg.get_string("model.name");
            require_usage(m == "auto" || m == "quadratic",
                          "data.name = quadratic defines its own objective: model.name must be "
                          "auto or quadratic, not " + m);
            const std::string p = cfg.get_string("data.partition.name");
            require_usage(p == "auto" || p == "natural",
                          "data.name = quadratic has one objective per client: "
                          "data.partition.name must be auto or natural, not " + p);
            require_usage(cfg.get_string("data.partition.byzantine_data") == "same",
                          "data.name = quadratic has one objective per client: "
                          "data.partition.byzantine_data must be same");
            require_usage(cfg.get_float("data.client_test_fraction") == 0,
                          "data.client_test_fraction needs clients with samples: data.name = "
                          "quadratic clients have an objective, not samples to hold out");
            return QuadraticProblem::from_config(cfg);
          }};
}

model::ModelRegistration quadratic_model_registration() {
  return {"quadratic", "the quadratic clients' own objective (quadratic data only)", {}, {}};
}

std::string QuadraticProblem::description() const {
  return fmt::format("quadratic clients: {} x dim {}", num_clients_, dim_);
}

// Every variant starts at x0: the clients have no data to tell models apart by.
void QuadraticProblem::init(float* x, std::uint64_t, std::uint32_t) const {
  for (std::int64_t j = 0; j < dim_; ++j) x[j] = static_cast<float>(x0_);
}

double QuadraticProblem::loss_grad(int c, const float* x, std::span<const std::int64_t>,
                                   float* grad, Rng& rng) {
  double loss = 0;
  const double* h = &h_[c * dim_];
  const double* a = &a_[c * dim_];
  for (std::int64_t j = 0; j < dim_; ++j) {
    const double r = static_cast<double>(x[j]) - a[j];
    loss += 0.5 * h[j] * r * r;
    if (grad) grad[j] = static_cast<float>(h[j] * r + (noise_ > 0 ? noise_ * rng.normal() : 0.0));
  }
  return loss;
}

double QuadraticProblem::client_loss(int c, const float* x) {
  double loss = 0;
  for (std::int64_t j = 0; j < dim_; ++j) {
    const double r = static_cast<double>(x[j]) - a_[c * dim_ + j];
    loss += 0.5 * h_[c * dim_ + j] * r * r;
  }
  return loss;
}

double QuadraticProblem::objective(const float* x) const {
  double total = 0;
  for (int c = 0; c < num_clients_; ++c)
    for (std::int64_t j = 0; j < dim_; ++j) {
      const double r = static_cast<double>(x[j]) - a_[c * dim_ + j];
      total += 0.5 * h_[c * dim_ + j] * r * r;
    }
  return total / num_clients_;
}

EvalSums QuadraticProblem::evaluate_chunk(const float* x, std::int64_t) {
  return EvalSums{objective(x), 0, 1};
}

std::vector<std::string> QuadraticProblem::extra_metric_names() const {
  std::vector<std::string> names = {"dist_to_opt"};
  if (record_x_)
    for (std::int64_t j = 0; j < dim_; ++j) names.push_back(fmt::format("x_{}", j));
  return names;
}

std::vector<double> QuadraticProblem::extra_metrics(const float* x) const {
  double d2 = 0;
  for (std::int64_t j = 0; j < dim_; ++j) {
    const double r = static_cast<double>(x[j]) - optimum_[j];
    d2 += r * r;
  }
  std::vector<double> out = {std::sqrt(d2)};
  if (record_x_)
    for (std::int64_t j = 0; j < dim_; ++j) out.push_back(static_cast<double>(x[j]));
  return out;
}

}  // namespace cohort::algo
