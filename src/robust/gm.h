// gm: geometric median by smoothed Weiszfeld (RFA; docs/algorithms.md §3).
#pragma once

#include <vector>

#include "robust/aggregator.h"

namespace cohort::robust {

// Note [Iterates as combinations]
// Every Weiszfeld iterate z_t (t >= 1) is a combination sum_i c_i u_i of the inputs, and z_0 is
// 0 or their mean.
// So ||z - u_i||^2 = q^T H q, with q the coefficients of z - u_i and H the Gram matrix of the
// vectors involved, and the T iterations run on n coefficients: one Gram product (Note [Gram
// distances] in krum.h: rows centred on their mean mu, with mu as one more row, so the
// coefficients are taken in the basis {u_i - mu, mu}) plus one weighted sum of the rows for the
// output, whatever T is. That is the Gram path. Its product costs (n+1)(n+2)/2 multiply-adds
// per coordinate, so for many inputs the direct path (Note [Direct Weiszfeld] in gm.cpp), which
// iterates on the d-vectors and reads the input T + 1 times, is cheaper; Note [gm path choice]
// picks one from n and T alone. The arithmetic is the same smoothed Weiszfeld on both paths;
// only the rounding differs (norms in double from a Gram matrix of float products, or from
// differences taken in double).

// ||q||_H^2 = q^T H q for a coefficient vector q of length R (H is R x R, row-major).
double gram_norm2(const std::vector<double>& h, int R, const std::vector<double>& q);

enum class GmPath { kAuto, kGram, kDirect };

// Whether the direct path is the cheaper one for n inputs and T iterations (Note [gm path
// choice] in gm.cpp). It depends on nothing else, so every rank and every ISA path takes the
// same path and computes the same bits.
bool gm_direct_is_cheaper(int n, int iters);

class GeometricMedian final : public Aggregator {
 public:
  // path: kAuto follows gm_direct_is_cheaper; the others force a path (tests, benchmarks).
  GeometricMedian(int iters, double nu, bool init_mean, GmPath path = GmPath::kAuto)
      : iters_(iters), nu_(nu), init_mean_(init_mean), path_(path) {}
  std::string name() const override { return "gm"; }
  // z <- sum_i beta_i u_i / sum_i beta_i, beta_i = w_i / max(nu, ||z - u_i||), T times from z0;
  // w_i = 1/n or the messages' weights normalised to sum 1.
  void aggregate(const Messages& m, const Context& ctx, float* out, Report& report) override;
  void check_inputs(int n) const override;

 private:
  int iters_;
  double nu_;
  bool init_mean_;
  GmPath path_;
};

// Its options, schema entry and factory (Note [Registration]).
AggregatorRegistration gm_registration();

}  // namespace cohort::robust
