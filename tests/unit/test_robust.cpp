// Robust aggregators (docs/algorithms.md §3) on a small 2-D example whose exact results
// tests/robust_reference.py prints (float64; /usr/bin/python3 tests/robust_reference.py).
// The inputs are float32 roundings of decimals (1.1f etc.), so a result may differ from the
// float64 value by the input rounding (2^-24 relative, ~1.2e-7 at |x| ~ 2) plus the output
// rounding; kTol allows 8 such units at |x| ~ 2 and is printed on failure.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <sstream>
#include <vector>

#include "core/errors.h"
#include "robust/aggregator.h"
#include "robust/bucketing.h"
#include "robust/cclip.h"
#include "robust/cm.h"
#include "robust/gm.h"
#include "robust/krum.h"

using namespace cohort;
using namespace cohort::robust;

namespace {

constexpr double kTol = 8 * 2.0 * 0x1.0p-24;  // ~1e-6

// Seven honest vectors near (1, 2), then two outliers at (-5, -5): rows 7 and 8.
std::vector<float> nine() {
  return {1, 2, 1.1f, 2, 0.9f, 2.1f, 1, 1.9f, 1.2f, 2.2f, 0.8f, 1.8f, 1.05f, 2.05f, -5, -5, -5, -5};
}
// The same honest seven, two more honest, then the two outliers (rows 9 and 10).
std::vector<float> eleven() {
  return {1,    2,     1.1f,  2,     0.9f,  2.1f,  1,     1.9f, 1.2f, 2.2f, 0.8f,
          1.8f, 1.05f, 2.05f, 1.04f, 1.97f, 0.97f, 2.04f, -5,   -5,   -5,   -5};
}

struct Input {
  std::vector<float> data;
  std::vector<int> clients;
  Messages m;
  Input(std::vector<float> v, int d, int first_client = 100) : data(std::move(v)) {
    const int n = static_cast<int>(data.size()) / d;
    clients.resize(n);
    std::iota(clients.begin(), clients.end(), first_client);
    m.data = data.data();
    m.n = n;
    m.d = d;
    m.clients = clients;
  }
};

AggregatorOptions opts(const std::string& name) {
  AggregatorOptions o;
  o.name = name;
  return o;
}

std::vector<float> run(Aggregator& a, const Messages& m, Report& r, const Context& ctx = {}) {
  std::vector<float> out(static_cast<std::size_t>(m.d), std::nanf(""));
  REQUIRE(aggregate(a, m, ctx, out.data(), r));
  return out;
}

void check_close(const std::vector<float>& got, std::vector<double> want, double tol = kTol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    INFO("coordinate " << k << ": got " << got[k] << ", want " << want[k] << ", tol " << tol);
    CHECK(std::abs(got[k] - want[k]) <= tol);
  }
}

std::vector<int> ids(std::initializer_list<int> rows, int first_client = 100) {
  std::vector<int> v;
  for (int r : rows) v.push_back(first_client + r);
  return v;
}

}  // namespace

TEST_CASE("robust: cm and tm on nine 2-D vectors") {
  Input in(nine(), 2);
  Report r;
  auto cm = make_aggregator(opts("cm"));
  check_close(run(*cm, in.m, r), {1.0, 2.0});  // cm: [1., 2.]
  auto o = opts("tm");
  o.b = 2;
  auto tm = make_aggregator(o);
  check_close(run(*tm, in.m, r), {0.95, 1.95});  // tm b=2: [0.95, 1.95]
  // Even n: the mean of the two middle values (rows 0..7: x sorted -5 .8 .9 1 1 1.05 1.1 1.2).
  Input even(std::vector<float>(in.data.begin(), in.data.begin() + 16), 2);
  check_close(run(*cm, even.m, r), {1.0, 2.0});
  Input four({1, 8, 2, 4, 3, 2, 4, 1}, 2);  // exact: x (2+3)/2, y (2+4)/2
  const auto c4 = run(*cm, four.m, r);
  CHECK(c4[0] == 2.5f);
  CHECK(c4[1] == 3.0f);
}

TEST_CASE("robust: cm and tm match a sort on random columns for n = 1..40") {
  Rng rng(7, 0, 0, Purpose::kTest);
  for (int n = 1; n <= 40; ++n) {
    const int d = 37;  // odd: a partial last block
    std::vector<float> v(static_cast<std::size_t>(n) * d);
    for (auto& x : v) x = static_cast<float>(std::round(rng.normal() * 8));  // many ties
    Input in(v, d);
    Report r;
    auto cm = make_aggregator(opts("cm"));
    const auto got = run(*cm, in.m, r);
    const int b = (n - 1) / 3;
    auto o = opts("tm");
    o.b = b;
    auto tm = make_aggregator(o);
    const auto got_tm = run(*tm, in.m, r);
    for (int k = 0; k < d; ++k) {
      std::vector<double> col(n);
      for (int i = 0; i < n; ++i) col[i] = v[static_cast<std::size_t>(i) * d + k];
      std::sort(col.begin(), col.end());
      const double med = n % 2 ? col[n / 2] : 0.5 * (col[n / 2 - 1] + col[n / 2]);
      double s = 0;
      for (int i = b; i < n - b; ++i) s += col[i];
      INFO("n " << n << " k " << k);
      CHECK(got[k] == static_cast<float>(med));
      CHECK(got_tm[k] == static_cast<float>(s / (n - 2 * b)));
    }
  }
}

TEST_CASE("robust: krum scores, pick and multikrum") {
  Input in(nine(), 2);
  Report r;
  auto o = opts("krum");
  o.f = 2;
  auto krum = make_aggregator(o);
  const auto out = run(*krum, in.m, r);
  // krum scores f=2: [0.125, 0.135, 0.245, 0.155, 0.405, 0.485, 0.105, 333.71, 333.71]
  const std::vector<double> want = {0.125, 0.135, 0.245,  0.155, 0.405,
                                    0.485, 0.105, 333.71, 333.71};
  REQUIRE(r.scores.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("row " << i << " score " << r.scores[i] << " want " << want[i]);
    CHECK(std::abs(r.scores[i] - want[i]) <= 1e-5 * std::max(1.0, want[i]));
  }
  CHECK(r.selected == ids({6}));  // krum pick f=2: 6 (the honest cluster)
  CHECK(out == std::vector<float>{1.05f, 2.05f});
  o.name = "multikrum";
  auto mk = make_aggregator(o);
  check_close(run(*mk, in.m, r), {1.0071428571428571, 2.007142857142857});  // multikrum mean
  CHECK(r.selected == ids({0, 1, 2, 3, 4, 5, 6}));
}

TEST_CASE("robust: krum ties go to the lowest row") {
  // Integer data with an integer mean (the Gram product centres on it), so every distance is
  // exact: rows 0 and 2 have equal scores, row 1 wins.
  Input in({0, 0, 1, 0, 2, 0, 10, 0, 12, 0}, 2);
  auto o = opts("krum");
  o.f = 1;  // n = 5 >= 2f+3; 2 nearest: row 0: 1+4, row 1: 1+1, row 2: 1+4
  auto krum = make_aggregator(o);
  Report r;
  run(*krum, in.m, r);
  CHECK(r.scores[0] == 5.0);
  CHECK(r.scores[1] == 2.0);
  CHECK(r.scores[2] == 5.0);
  CHECK(r.selected == ids({1}));
  // x = 0 2 10 12 51 (mean 15): scores 104, 68, 68, 104, ...: rows 1 and 2 tie, row 1 wins.
  Input tie({0, 0, 2, 0, 10, 0, 12, 0, 51, 0}, 2);
  run(*krum, tie.m, r);
  CHECK(r.scores[1] == 68.0);
  CHECK(r.scores[2] == 68.0);
  CHECK(r.selected == ids({1}));
}

namespace {

// gm on a forced path (Note [gm path choice]); kAuto is what make_aggregator builds.
std::unique_ptr<Aggregator> make_gm(GmPath path, int iters, bool init_mean = false,
                                    double nu = 0.1) {
  return std::make_unique<GeometricMedian>(iters, nu, init_mean, path);
}

const char* path_name(GmPath p) {
  return p == GmPath::kGram ? "gram" : p == GmPath::kDirect ? "direct" : "auto";
}

}  // namespace

TEST_CASE("robust: gm after T = 3 and T = 8 from zero, and convergence") {
  Input in(nine(), 2);
  Report r;
  auto o = opts("gm");
  o.nu = 0.1;
  o.iters = 3;
  auto g3 = make_aggregator(o);
  check_close(run(*g3, in.m, r), {0.9084328662800718, 1.895813608485364}, 4 * kTol);
  // Both paths, whichever the rule would choose (Note [gm path choice]).
  for (const GmPath path : {GmPath::kGram, GmPath::kDirect}) {
    INFO("path " << path_name(path));
    // gm T=3 nu=0.1 z0=0: [0.9084328662800718, 1.895813608485364 ]
    check_close(run(*make_gm(path, 3), in.m, r), {0.9084328662800718, 1.895813608485364}, 4 * kTol);
    // gm T=8 nu=0.1 z0=0: [0.9834438554210816, 1.9688290347652708]
    check_close(run(*make_gm(path, 8), in.m, r), {0.9834438554210816, 1.9688290347652708},
                4 * kTol);
    // gm T=3 nu=0.1 z0=mean: [0.9135753074593074, 1.9005286364782012]
    check_close(run(*make_gm(path, 3, true), in.m, r), {0.9135753074593074, 1.9005286364782012},
                4 * kTol);
  }
  o.iters = 8;
  auto g8 = make_aggregator(o);
  const auto z8 = run(*g8, in.m, r);
  check_close(z8, {0.9834438554210816, 1.9688290347652708}, 4 * kTol);
  // gm T=200 nu=0.1 z0=0: [0.984848602466088, 1.9700242726107964]
  const std::vector<double> limit = {0.984848602466088, 1.9700242726107964};
  for (const GmPath path : {GmPath::kAuto, GmPath::kGram, GmPath::kDirect}) {
    double prev = 1e300;
    for (int t : {1, 2, 4, 8, 16, 32}) {
      const auto z = run(*make_gm(path, t), in.m, r);
      const double err = std::hypot(z[0] - limit[0], z[1] - limit[1]);
      INFO("path " << path_name(path) << ", T " << t << " distance to the T=200 point " << err);
      CHECK(err <= prev + 4 * kTol);
      prev = err;
    }
    CHECK(prev <= 4 * kTol);
  }
}

TEST_CASE("robust: gm by hand on both paths") {
  // docs/algorithms.md §7. Every value is checked against a closed form.
  Report r;
  for (const GmPath path : {GmPath::kGram, GmPath::kDirect}) {
    INFO("path " << path_name(path));
    // One input: z = beta u / beta = u exactly, from either start, for any T.
    Input one({0.3f, -7.25f, 1e-3f}, 3);
    for (int t : {1, 2, 5})
      for (bool mean : {false, true}) CHECK(run(*make_gm(path, t, mean), one.m, r) == one.data);
    // (3, 4), (-3, 4), (0, -5) are all 5 from 0 (exactly, on both paths: small integers), so
    // the betas are equal and z_1 is their mean (0, 1): y = (8 beta - 5 beta) / (3 beta) is 1
    // exactly, x = (3 beta - 3 beta) / (3 beta) only up to the rounding of 3 beta in the
    // weighted sum (fma(beta, -3, fl(3 beta)) is that rounding error, not 0).
    Input tri({3, 4, -3, 4, 0, -5}, 2);
    const auto z1_tri = run(*make_gm(path, 1), tri.m, r);
    CHECK(std::abs(z1_tri[0]) <= 0x1.0p-52);
    CHECK(z1_tri[1] == 1.0f);
    // From (0, 1) the distances are 3 sqrt 2, 3 sqrt 2 and 6: z_2 = (0, (8 sqrt 2 - 5) /
    // (2 sqrt 2 + 1)) = (0, (37 - 18 sqrt 2) / 7).
    const auto z2 = run(*make_gm(path, 2), tri.m, r);
    CHECK(std::abs(z2[0]) <= 1e-7);
    check_close(z2, {0.0, (37 - 18 * std::sqrt(2.0)) / 7}, 2 * 0x1.0p-24 * 2);
    // The smoothing: from 0, u_0 = 0 is at distance 0 < nu = 0.1, so beta = (0.5 / 0.1,
    // 0.5 / 2) and z_1 = 2 * 0.25 / 5.25 = 2/21.
    Input two({0, 0, 2, 0}, 2);
    const auto z1 = run(*make_gm(path, 1), two.m, r);
    CHECK(z1[1] == 0.0f);
    check_close(z1, {2.0 / 21.0, 0.0}, 0x1.0p-24);
    // With nu = 3 both are within nu of 0: beta = (0.5 / 3, 0.5 / 3), z_1 = the mean (1, 0).
    CHECK(run(*make_gm(path, 1, false, 3.0), two.m, r) == std::vector<float>{1.0f, 0.0f});
  }
}

namespace {

// What the two gm paths must agree on, derived from their rounding (Note [Gram distances] in
// krum.h, Note [Direct Weiszfeld] in gm.cpp): the smoothed Weiszfeld iteration in double on the
// float inputs with direct differences (z_t, the reference), and for each path a bound delta on
// the relative error of its betas, carried through the iterations:
//  - a squared distance on the Gram path is q^T H q with H's entries off by at most
//    g = 65 * 2^-24 of sum_k |x'_jk x'_lk| (64 float fmas per lane, then double sums; x' = the
//    rows centred on their float mean), so it is off by at most g A_i, A_i = sum_k (sum_j |q_j|
//    |x'_jk|)^2; the centred rows are themselves rounded, which moves the vector whose norm is
//    taken by at most 2^-24 sqrt(A_i). The direct path's squared distances are double sums of
//    double differences: 2^-40 relative covers them with room to spare.
//  - an iterate that is off by e moves every distance by at most e; max(nu, .) moves no more.
//  - betas off by a relative delta move the next iterate by delta / (1 - delta) times
//    sum_i c_i ||u_i - z|| (z' - z = sum_i beta_i delta_i (u_i - z) / sum_i beta'_i), and each
//    coordinate k by delta / (1 - delta) max_i |u_ik - z_k|.
// The output is then within that last bound plus one float ulp (its rounding) of the reference.
struct GmBound {
  std::vector<double> z;                    // z_T in double
  std::vector<double> spread;               // max_i |u_ik - z_T,k|
  double delta_gram = 0, delta_direct = 0;  // relative error bounds on the final betas
};

GmBound gm_bound(const std::vector<float>& v, int n, std::int64_t d, std::vector<double> w,
                 int iters, double nu, bool init_mean) {
  const double u = 0x1.0p-24, g = 65 * u;
  auto at = [&](int i, std::int64_t k) { return static_cast<double>(v[i * d + k]); };
  double wsum = 0;
  for (double x : w) wsum += x;
  for (double& x : w) x /= wsum;
  // The Gram path's basis: the float mean and the rows centred on it, in float.
  std::vector<float> mf(static_cast<std::size_t>(d), 0.0f);
  for (std::int64_t k = 0; k < d; ++k) {
    for (int i = 0; i < n; ++i) mf[k] += v[i * d + k];
    mf[k] /= static_cast<float>(n);
  }
  std::vector<double> xc(v.size());
  for (int i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) xc[i * d + k] = std::abs(v[i * d + k] - mf[k]);
  std::vector<double> z(static_cast<std::size_t>(d), 0.0), c(n, 0.0);
  double e_gram = 0, e_direct = 0, delta_gram = 0, delta_direct = 0;
  if (init_mean) {
    for (std::int64_t k = 0; k < d; ++k) {
      double s = 0, a = 0;
      for (int i = 0; i < n; ++i) s += at(i, k), a += std::abs(at(i, k));
      z[k] = s / n;
      // The Gram path starts from the float mean, n float additions and a division away.
      const double off = (n + 1) * u * a / n;
      e_gram += off * off;
    }
    e_gram = std::sqrt(e_gram);
  }
  for (int t = 0; t < iters; ++t) {
    // Per coordinate: sum_j c_j |x'_jk| (the Gram path's z_t - mu; z_0 = 0 is -mu + mu) and
    // sum_j c_j |u_jk| (the size of the terms of the direct path's z_tk; z_0 = the mean: 1/n).
    std::vector<double> cx(static_cast<std::size_t>(d), 0.0), cu(cx.size(), 0.0);
    for (std::int64_t k = 0; k < d; ++k)
      for (int j = 0; j < n; ++j) {
        const double cj = t == 0 ? (init_mean ? 1.0 / n : 0.0) : c[j];
        cx[k] += t == 0 ? 0.0 : cj * xc[j * d + k];
        cu[k] += cj * std::abs(at(j, k));
      }
    if (t == 0 && !init_mean)
      for (std::int64_t k = 0; k < d; ++k) cx[k] = std::abs(mf[k]);
    std::vector<double> dist(n), A(n, 0.0), Z(n, 0.0);
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (std::int64_t k = 0; k < d; ++k) {
        const double e = at(i, k) - z[k];
        s += e * e;
        const double a = xc[i * d + k] + cx[k], b = std::abs(at(i, k)) + cu[k];
        A[i] += a * a;
        Z[i] += b * b;
      }
      dist[i] = std::sqrt(s);
    }
    std::vector<double> beta(n);
    double total = 0;
    delta_gram = delta_direct = 0;
    for (int i = 0; i < n; ++i) {
      const double D = std::max(nu, dist[i]);
      beta[i] = w[i] / D;
      total += beta[i];
      const double dg = std::min(g * A[i] / dist[i], std::sqrt(g * A[i])) + u * std::sqrt(A[i]);
      const double rg = (dg + e_gram) / D, rd = (0x1.0p-40 * std::sqrt(Z[i]) + e_direct) / D;
      delta_gram = std::max(delta_gram, rg / (1 - rg));
      delta_direct = std::max(delta_direct, rd / (1 - rd));
    }
    for (int i = 0; i < n; ++i) c[i] = beta[i] / total;
    for (std::int64_t k = 0; k < d; ++k) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += c[i] * at(i, k);
      z[k] = s;
    }
    double mean_dist = 0;
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (std::int64_t k = 0; k < d; ++k) s += (at(i, k) - z[k]) * (at(i, k) - z[k]);
      mean_dist += c[i] * std::sqrt(s);
    }
    e_gram = delta_gram / (1 - delta_gram) * mean_dist;
    e_direct = delta_direct / (1 - delta_direct) * mean_dist;
  }
  GmBound b{z, std::vector<double>(static_cast<std::size_t>(d), 0.0), delta_gram, delta_direct};
  for (std::int64_t k = 0; k < d; ++k)
    for (int i = 0; i < n; ++i) b.spread[k] = std::max(b.spread[k], std::abs(at(i, k) - z[k]));
  return b;
}

double float_ulp(double x) {
  const float f = static_cast<float>(std::abs(x));
  return static_cast<double>(std::nextafter(f, INFINITY) - f);
}

}  // namespace

TEST_CASE("robust: gm's Gram and direct paths agree within their rounding bounds") {
  Rng rng(17, 0, 0, Purpose::kTest);
  int cases = 0;
  for (const int n : {1, 3, 13, 40})
    for (const std::int64_t d : {std::int64_t{37}, kSumChunk + 23, 3 * kSumChunk + 5}) {
      // Rows spread around two centres (a quarter of them far off), so the betas differ.
      std::vector<float> v(static_cast<std::size_t>(n * d));
      for (int i = 0; i < n; ++i) {
        const double centre = i % 4 == 3 ? -4.0 : 1.5;
        for (std::int64_t k = 0; k < d; ++k)
          v[i * d + k] = static_cast<float>(rng.normal(centre, 1.0 + 0.1 * (i % 5)));
      }
      std::vector<double> weights(n);
      for (int i = 0; i < n; ++i) weights[i] = 1.0 + (i * 7) % 5;
      for (const bool weighted : {false, true})
        for (const int iters : {1, 3, 8})
          for (const bool mean : {false, true}) {
            Input in(v, static_cast<int>(d));
            if (weighted) in.m.weights = weights;
            const auto b = gm_bound(v, n, d, weighted ? weights : std::vector<double>(n, 1.0),
                                    iters, 0.1, mean);
            Report r;
            const auto gram = run(*make_gm(GmPath::kGram, iters, mean), in.m, r);
            const auto direct = run(*make_gm(GmPath::kDirect, iters, mean), in.m, r);
            const double fg = b.delta_gram / (1 - b.delta_gram);
            const double fd = b.delta_direct / (1 - b.delta_direct);
            double worst_g = 0, worst_d = 0, worst_gd = 0;  // the largest share of a bound used
            for (std::int64_t k = 0; k < d; ++k) {
              const double ulp = float_ulp(b.z[k]);
              const double tg = fg * b.spread[k] + ulp, td = fd * b.spread[k] + ulp;
              worst_g = std::max(worst_g, std::abs(gram[k] - b.z[k]) / tg);
              worst_d = std::max(worst_d, std::abs(direct[k] - b.z[k]) / td);
              worst_gd = std::max(worst_gd, std::abs(gram[k] - direct[k]) / (tg + td));
            }
            INFO("n " << n << ", d " << d << ", T " << iters << (mean ? ", from the mean" : "")
                      << (weighted ? ", weighted" : "") << "; beta error bounds: gram "
                      << b.delta_gram << ", direct " << b.delta_direct
                      << "; largest share of the bound used: gram " << worst_g << ", direct "
                      << worst_d << ", gram - direct " << worst_gd);
            CHECK(worst_g <= 1.0);
            CHECK(worst_d <= 1.0);
            CHECK(worst_gd <= 1.0);
            ++cases;
          }
    }
  CHECK(cases == 4 * 3 * 12);
}

TEST_CASE("robust: gm picks its path from n and T alone") {
  // Note [gm path choice]: the Gram path for few inputs, the direct one for many.
  CHECK_FALSE(gm_direct_is_cheaper(1, 3));
  CHECK_FALSE(gm_direct_is_cheaper(25, 3));
  CHECK(gm_direct_is_cheaper(100, 3));
  CHECK(gm_direct_is_cheaper(40, 1));
  CHECK(gm_direct_is_cheaper(16, 2));  // the direct-path case of tests/cli/test_shard_plan.sh
  for (int t = 1; t < 50; ++t)  // more iterations never favour the direct path
    for (int n = 1; n < 300; ++n)
      if (gm_direct_is_cheaper(n, t + 1)) CHECK(gm_direct_is_cheaper(n, t));
  // The rule's choice is the forced path's result, bit for bit.
  Rng rng(23, 0, 0, Purpose::kTest);
  for (const int n : {5, 100}) {
    const int d = 300;
    std::vector<float> v(static_cast<std::size_t>(n) * d);
    for (auto& x : v) x = static_cast<float>(rng.normal());
    Input in(v, d);
    Report r;
    const auto got = run(*make_gm(GmPath::kAuto, 3), in.m, r);
    const GmPath chosen = gm_direct_is_cheaper(n, 3) ? GmPath::kDirect : GmPath::kGram;
    INFO("n " << n);
    CHECK(got == run(*make_gm(chosen, 3), in.m, r));
  }
}

TEST_CASE("robust: cclip after L = 1 and 3 from zero, state, and tau -> infinity") {
  Input in(nine(), 2);
  Report r;
  auto o = opts("cclip");
  o.tau = 1;
  o.iters = 1;
  auto c1 = make_aggregator(o);
  const auto v1 = run(*c1, in.m, r);
  check_close(v1, {0.19060566453894306, 0.5380270306774239}, 4 * kTol);
  // The second call starts from the first output.
  check_close(run(*c1, in.m, r), {0.4147536749580055, 1.0557492018989412}, 4 * kTol);
  o.iters = 3;
  auto c3 = make_aggregator(o);
  check_close(run(*c3, in.m, r), {0.666049154174007, 1.5344795635687207}, 4 * kTol);
  // tau -> inf, L = 1: v0 + mean(u - v0) = the mean, from any previous aggregate.
  o.tau = std::numeric_limits<double>::infinity();
  o.iters = 1;
  auto ci = make_aggregator(o);
  Input other({3, -7, 5, 1}, 2);
  run(*ci, other.m, r);  // state (4, -3)
  const auto mean = run(*ci, in.m, r);
  check_close(mean, {(1 + 1.1 + 0.9 + 1 + 1.2 + 0.8 + 1.05 - 10) / 9.0,
                     (2 + 2 + 2.1 + 1.9 + 2.2 + 1.8 + 2.05 - 10) / 9.0});
}

TEST_CASE("robust: bucketing s = 2 with the keyed permutation, inner cm") {
  Input in(nine(), 2);
  Context ctx;
  ctx.seed = 42;
  ctx.round = 3;
  const auto perm = Bucketing::permutation(ctx, 9);
  std::ostringstream os;
  for (int p : perm) os << p << ' ';
  INFO("permutation " << os.str());
  // bucketing seed=42 round=3 permutation: [2, 4, 3, 5, 6, 7, 0, 8, 1]
  CHECK(perm == std::vector<int>{2, 4, 3, 5, 6, 7, 0, 8, 1});
  auto o = opts("cm");
  o.bucket = 2;
  auto b = make_aggregator(o);
  Report r;
  // bucket means (1.05,2.15) (0.9,1.85) (-1.975,-1.475) (-2,-1.5) (1.1,2); cm: [0.9, 1.85]
  check_close(run(*b, in.m, r, ctx), {0.9, 1.85});
  // krum inside: the selected bucket's clients are reported.
  o.name = "krum";
  o.f = 0;  // 5 buckets >= 3
  auto bk = make_aggregator(o);
  bk->check_inputs(9);
  run(*bk, in.m, r, ctx);
  REQUIRE(r.selected.size() >= 1);
  CHECK(r.scores.size() == 9u);
  o.f = 2;
  auto bad = make_aggregator(o);
  CHECK_THROWS_AS(bad->check_inputs(9), UsageError);  // 5 buckets < 2f+3 = 7
}

TEST_CASE("robust: bulyan with n = 11, f = 2") {
  Input in(eleven(), 2);
  auto o = opts("bulyan");
  o.f = 2;
  auto b = make_aggregator(o);
  Report r;
  check_close(run(*b, in.m, r), {0.99, 1.99});      // bulyan n=11 f=2: [0.99, 1.99]
  CHECK(r.selected == ids({0, 1, 3, 6, 7, 8, 9}));  // bulyan selected: [0, 1, 3, 6, 7, 8, 9]
}

TEST_CASE("robust: zeno with a quadratic validation loss") {
  Input in(nine(), 2);
  const double ystar[2] = {1, 2};
  const float x[2] = {2, 4};
  Context ctx;
  ctx.x = x;
  ctx.validation_loss = [&](const float* y) {
    return 0.5 * ((y[0] - ystar[0]) * (y[0] - ystar[0]) + (y[1] - ystar[1]) * (y[1] - ystar[1]));
  };
  auto o = opts("zeno");
  o.b = 2;
  o.gamma = 0.1;
  o.rho = 5e-4;
  auto z = make_aggregator(o);
  Report r;
  check_close(run(*z, in.m, r, ctx), {1.0071428571428571, 2.007142857142857});
  // zeno scores: [0.4725, 0.481345, 0.48129, 0.454645, 0.52546, 0.41866, 0.4858225, -1.775, -1.775]
  const std::vector<double> want = {0.4725,  0.481345,  0.48129, 0.454645, 0.52546,
                                    0.41866, 0.4858225, -1.775,  -1.775};
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("row " << i << " score " << r.scores[i]);
    CHECK(std::abs(r.scores[i] - want[i]) <= 1e-5);
  }
  CHECK(r.selected == ids({0, 1, 2, 3, 4, 5, 6}));
}

TEST_CASE("robust: NaN and Inf rows never reach the aggregate") {
  for (const std::string name : {"cm", "tm", "krum", "multikrum", "gm", "cclip", "bulyan"}) {
    auto v = eleven();
    v.insert(v.begin() + 4, {std::nanf(""), 1.0f});
    v.insert(v.begin() + 10, {1.0f, std::numeric_limits<float>::infinity()});
    v.push_back(-std::numeric_limits<float>::infinity());
    v.push_back(0.0f);
    Input bad(v, 2);
    Input good(eleven(), 2);
    auto o = opts(name);
    o.f = 2;
    o.b = 2;
    auto a1 = make_aggregator(o), a2 = make_aggregator(o);
    Report r1, r2;
    const auto got = run(*a1, bad.m, r1);
    const auto want = run(*a2, good.m, r2);
    INFO(name);
    CHECK(r1.dropped_nonfinite == 3);
    CHECK(std::isfinite(got[0]));
    CHECK(std::isfinite(got[1]));
    CHECK(got == want);
  }
  // All rows non-finite: false, out untouched.
  std::vector<float> v = {std::nanf(""), 0, 0, std::numeric_limits<float>::infinity()};
  Input all(v, 2);
  auto cm = make_aggregator(opts("cm"));
  Report r;
  float out[2] = {7, 7};
  CHECK_FALSE(aggregate(*cm, all.m, Context{}, out, r));
  CHECK(r.dropped_nonfinite == 2);
  CHECK(out[0] == 7);
  // Too few finite rows for the rule: a run-time error, not a UsageError.
  auto o = opts("krum");
  o.f = 2;
  auto krum = make_aggregator(o);
  Input nine_in(nine(), 2);
  auto v9 = nine();
  v9[0] = std::nanf("");
  v9[4] = std::nanf("");
  v9[9] = std::numeric_limits<float>::infinity();
  Input nine_bad(v9, 2);
  CHECK_NOTHROW(run(*krum, nine_in.m, r));
  std::vector<float> o2(2);
  try {
    aggregate(*krum, nine_bad.m, Context{}, o2.data(), r);
    FAIL("no error");
  } catch (const UsageError&) {
    FAIL("a UsageError at run time");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("6 of 9 messages are finite"));
  }
}

TEST_CASE("robust: check_inputs messages and option errors") {
  auto o = opts("krum");
  o.f = 2;
  auto krum = make_aggregator(o);
  CHECK_NOTHROW(krum->check_inputs(7));
  try {
    krum->check_inputs(6);
    FAIL("no error");
  } catch (const UsageError& e) {
    CHECK_THAT(e.what(), Catch::Contains("needs n >= 2f+3 = 7") &&
                             Catch::Contains("with 6 inputs f <= 1 works"));
  }
  o.name = "bulyan";
  auto bul = make_aggregator(o);
  CHECK_THROWS_WITH(bul->check_inputs(10), Catch::Contains("4f+3 = 11"));
  auto t = opts("tm");
  t.b = 2;
  CHECK_THROWS_WITH(make_aggregator(t)->check_inputs(4), Catch::Contains("n > 2b = 4"));
  CHECK_THROWS_WITH(make_aggregator(opts("median")),
                    Catch::Contains("unknown aggregator 'median'") && Catch::Contains("krum"));
  auto g = opts("gm");
  g.nu = 0;
  CHECK_THROWS_WITH(make_aggregator(g), Catch::StartsWith("aggregator.nu:"));
  g = opts("gm");
  g.init = "median";
  CHECK_THROWS_WITH(make_aggregator(g), Catch::StartsWith("aggregator.init:"));
  auto c = opts("cclip");
  c.tau = -1;
  CHECK_THROWS_WITH(make_aggregator(c), Catch::StartsWith("aggregator.tau:"));
  auto k = opts("krum");
  k.f = -1;
  CHECK_THROWS_WITH(make_aggregator(k), Catch::StartsWith("aggregator.f:"));
  auto bk = opts("cm");
  bk.bucket = -2;
  CHECK_THROWS_WITH(make_aggregator(bk), Catch::StartsWith("aggregator.bucketing:"));
}

TEST_CASE("robust: every ISA path gives the same bits") {
  Rng rng(3, 0, 0, Purpose::kTest);
  const int n = 13, d = 3001;
  std::vector<float> v(static_cast<std::size_t>(n) * d);
  for (auto& x : v) x = static_cast<float>(rng.normal(1.0, 3.0));
  Input in(v, d);
  for (const std::string name : {"cm", "tm", "krum", "multikrum", "gm", "cclip", "bulyan"}) {
    std::vector<float> ref;
    std::vector<double> ref_scores;
    for (const std::string isa : {"generic", "avx2", "avx512"}) {
      if (!force_robust_isa(isa)) continue;
      auto o = opts(name);
      o.f = 2;
      o.b = 2;
      auto a = make_aggregator(o);
      Report r;
      const auto out = run(*a, in.m, r);
      INFO(name << " on " << isa);
      if (ref.empty()) {
        ref = out;
        ref_scores = r.scores;
      } else {
        CHECK(out == ref);
        CHECK(r.scores == ref_scores);
      }
    }
    force_robust_isa("");
  }
}

TEST_CASE("robust: every ISA path gives the same bits at every n the kernels special-case") {
  // The register sorting networks are compiled per n up to 28 (AVX-512 and AVX2), the Gram tiles
  // group rows by 5 (AVX-512), 3 (AVX2) or 4 (generic), and the column loops have 16- and
  // 8-wide tails: n and d cover each case, with ties, +0 and -0 among the values.
  const auto bits = [](const std::vector<float>& v) {
    std::vector<std::uint32_t> b(v.size());
    std::memcpy(b.data(), v.data(), sizeof(float) * v.size());
    return b;
  };
  Rng rng(11, 0, 0, Purpose::kTest);
  for (const int n : {1, 2, 3, 4, 5, 7, 8, 9, 11, 14, 16, 17, 25, 26, 28, 29, 40}) {
    for (const int d : {1, 7, 9, 17, 4096 + 23}) {
      std::vector<float> v(static_cast<std::size_t>(n) * d);
      for (auto& x : v) {
        const double u = rng.uniform();
        x = u < 0.05 ? 0.0f : u < 0.1 ? -0.0f : u < 0.2 ? 1.5f : static_cast<float>(rng.normal(0.5, 2.0));
      }
      Input in(v, d);
      for (const std::string name : {"cm", "tm", "krum", "multikrum", "gm", "cclip", "bulyan"}) {
        auto o = opts(name);
        o.f = name == "bulyan" ? (n - 3) / 4 : (n - 3) / 2;
        o.b = (n - 1) / 2;
        if ((name == "krum" || name == "multikrum" || name == "bulyan") && n < 3) continue;
        std::vector<std::uint32_t> ref;
        std::vector<double> ref_scores;
        for (const std::string isa : {"generic", "avx2", "avx512"}) {
          if (!force_robust_isa(isa)) continue;
          auto a = make_aggregator(o);
          Report r;
          const auto out = bits(run(*a, in.m, r));
          INFO(name << " on " << isa << ", n = " << n << ", d = " << d);
          if (ref.empty()) {
            ref = out;
            ref_scores = r.scores;
          } else {
            CHECK(out == ref);
            CHECK(r.scores == ref_scores);
          }
        }
        force_robust_isa("");
      }
    }
  }
}

TEST_CASE("robust: gm's direct path gives the same bits on every ISA path") {
  // Its blocks are 64 coordinates on AVX-512 and the generic path and 32 on AVX2, with scalar
  // tails; d covers each case, one and several chunks, with ties, +0 and -0 among the values.
  const auto bits = [](const std::vector<float>& v) {
    std::vector<std::uint32_t> b(v.size());
    std::memcpy(b.data(), v.data(), sizeof(float) * v.size());
    return b;
  };
  Rng rng(29, 0, 0, Purpose::kTest);
  for (const int n : {1, 2, 3, 5, 8, 13, 40, 100}) {
    for (const int d : {1, 7, 9, 31, 32, 33, 63, 64, 65, 4096 + 23, 2 * 4096 + 100}) {
      std::vector<float> v(static_cast<std::size_t>(n) * d);
      for (auto& x : v) {
        const double u = rng.uniform();
        x = u < 0.05 ? 0.0f : u < 0.1 ? -0.0f : u < 0.2 ? 1.5f : static_cast<float>(rng.normal(0.5, 2.0));
      }
      std::vector<double> weights(n);
      for (int i = 0; i < n; ++i) weights[i] = 1.0 + i % 3;
      for (const bool mean : {false, true})
        for (const bool weighted : {false, true}) {
          Input in(v, d);
          if (weighted) in.m.weights = weights;
          std::vector<std::uint32_t> ref;
          for (const std::string isa : {"generic", "avx2", "avx512"}) {
            if (!force_robust_isa(isa)) continue;
            Report r;
            const auto out = bits(run(*make_gm(GmPath::kDirect, 3, mean), in.m, r));
            INFO("n = " << n << ", d = " << d << ", " << isa << (mean ? ", from the mean" : "")
                        << (weighted ? ", weighted" : ""));
            if (ref.empty())
              ref = out;
            else
              CHECK(out == ref);
          }
          force_robust_isa("");
        }
    }
  }
}

TEST_CASE("robust: krum distances stay accurate for vectors with a large common offset") {
  // Rows = 1000 + small spread over d = 4096: direct differences are exact in double.
  Rng rng(5, 0, 0, Purpose::kTest);
  const int n = 7, d = 4096;
  std::vector<float> v(static_cast<std::size_t>(n) * d);
  for (auto& x : v) x = static_cast<float>(1000.0 + 0.01 * rng.normal());
  std::vector<const float*> rows(n);
  for (int i = 0; i < n; ++i) rows[i] = v.data() + static_cast<std::size_t>(i) * d;
  const auto dist = gram_distances(centered_gram(rows, n, false, d), n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double exact = 0;
      for (int k = 0; k < d; ++k) {
        const double t = static_cast<double>(rows[i][k]) - rows[j][k];
        exact += t * t;
      }
      INFO(i << "," << j << " got " << dist[i * n + j] << " exact " << exact);
      CHECK(std::abs(dist[i * n + j] - exact) <= 1e-4 * exact + 1e-12);
    }
}
