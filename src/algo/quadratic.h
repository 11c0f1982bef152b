// Quadratic clients f_i(x) = 1/2 (x - a_i)' H_i (x - a_i) with diagonal H_i: a problem whose
// optimum x* = (sum_i H_i)^-1 sum_i H_i a_i is known, for exact tests of the algorithms. Each
// client's H_i may differ per coordinate (elliptic contours), and with record_x the coordinates of
// x are extra metrics x_0 .. x_{dim-1}, so that a run records its iterate path.
#pragma once

#include "algo/problem.h"

namespace cohort::algo {

class QuadraticProblem final : public Problem {
 public:
  // h, a: num_clients*dim values each (client-major).
  // record_x: report x_0 .. x_{dim-1} besides dist_to_opt (dim <= kMaxRecordedDim).
  QuadraticProblem(int num_clients, std::int64_t dim, std::vector<double> h,
                   std::vector<double> a, double noise, double x0, bool record_x = false);
  static constexpr std::int64_t kMaxRecordedDim = 16;
  static std::unique_ptr<QuadraticProblem> from_config(const Config& cfg);

  std::string description() const override;
  int num_clients() const override { return num_clients_; }
  const std::vector<LayerView>& layers() const override { return layers_; }
  std::int64_t client_samples(int) const override { return 1; }
  void init(float* x, std::uint64_t seed, std::uint32_t variant = 0) const override;
  double client_loss(int c, const float* x) override;  // f_c(x), without noise
  double loss_grad(int c, const float* x, std::span<const std::int64_t> positions, float* grad,
                   Rng& rng) override;
  std::int64_t num_eval_chunks() const override { return 1; }
  EvalSums evaluate_chunk(const float* x, std::int64_t chunk) override;
  bool has_accuracy() const override { return false; }
  double server_loss(const float* y, std::uint64_t, std::uint32_t, int) override {
    return objective(y);
  }
  std::vector<std::string> extra_metric_names() const override;
  std::vector<double> extra_metrics(const float* x) const override;

  const std::vector<double>& optimum() const { return optimum_; }
  double objective(const float* x) const;  // mean_i f_i(x)

 private:
  int num_clients_;
  std::int64_t dim_;
  std::vector<double> h_, a_, optimum_;
  double noise_, x0_;
  bool record_x_;
  std::vector<LayerView> layers_;
};

// data.name = quadratic: its options, schema entry and factory (Note [Registration]), and its
// model, which is the clients' objective itself (no factory: refused with any other data).
ProblemRegistration quadratic_registration();
model::ModelRegistration quadratic_model_registration();

}  // namespace cohort::algo
