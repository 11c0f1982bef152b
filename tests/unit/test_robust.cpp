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

TEST_CASE("robust: gm after T = 3 and T = 8 from zero, and convergence") {
  Input in(nine(), 2);
  Report r;
  auto o = opts("gm");
  o.nu = 0.1;
  o.iters = 3;
  auto g3 = make_aggregator(o);
  check_close(run(*g3, in.m, r), {0.9084328662800718, 1.895813608485364}, 4 * kTol);
  o.iters = 8;
  auto g8 = make_aggregator(o);
  const auto z8 = run(*g8, in.m, r);
  check_close(z8, {0.9834438554210816, 1.9688290347652708}, 4 * kTol);
  // gm T=200 nu=0.1 z0=0: [0.984848602466088, 1.9700242726107964]
  const std::vector<double> limit = {0.984848602466088, 1.9700242726107964};
  double prev = 1e300;
  for (int t : {1, 2, 4, 8, 16, 32}) {
    o.iters = t;
    auto g = make_aggregator(o);
    const auto z = run(*g, in.m, r);
    const double err = std::hypot(z[0] - limit[0], z[1] - limit[1]);
    INFO("T " << t << " distance to the T=200 point " << err);
    CHECK(err <= prev + 4 * kTol);
    prev = err;
  }
  CHECK(prev <= 4 * kTol);
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
