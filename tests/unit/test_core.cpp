// The keyed RNG and exact sums.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "core/exact_sum.h"
#include "core/rng.h"

using namespace cohort;

TEST_CASE("core: Philox4x32-10 matches the Random123 known-answer vector", "[core]") {
  // Random123 kat_vectors: philox4x32 10, counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  Rng rng(0, 0, 0, static_cast<Purpose>(0));
  REQUIRE(rng.next_u32() == 0x6627e8d5u);
  REQUIRE(rng.next_u32() == 0xe169c58du);
  REQUIRE(rng.next_u32() == 0xbc57ac4cu);
  REQUIRE(rng.next_u32() == 0x9b00dbd8u);
}

TEST_CASE("core: streams are pure functions of (seed, round, client, purpose)", "[core]") {
  Rng a(5, 1, 2, Purpose::kBatches), b(5, 1, 2, Purpose::kBatches);
  for (int i = 0; i < 100; ++i) REQUIRE(a.next_u64() == b.next_u64());
  Rng c(5, 1, 3, Purpose::kBatches), d(5, 2, 2, Purpose::kBatches), e(6, 1, 2, Purpose::kBatches),
      f(5, 1, 2, Purpose::kModelInit);
  const auto x = Rng(5, 1, 2, Purpose::kBatches).next_u64();
  REQUIRE(c.next_u64() != x);
  REQUIRE(d.next_u64() != x);
  REQUIRE(e.next_u64() != x);
  REQUIRE(f.next_u64() != x);
}

TEST_CASE("core: uniform, normal and below have the right moments", "[core]") {
  const int n = 200000;
  Rng rng(1, 0, kGlobalClient, Purpose::kTest);
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  std::vector<int> bins(7, 0);
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    su += u;
    su2 += u * u;
    const double z = rng.normal();
    sn += z;
    sn2 += z * z;
    ++bins[rng.below(7)];
  }
  // Tolerances: 5 standard errors of the sample mean / variance.
  REQUIRE(std::fabs(su / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
  REQUIRE(std::fabs(su2 / n - su * su / n / n - 1.0 / 12) < 5 * std::sqrt(1.0 / 180 / n));
  REQUIRE(std::fabs(sn / n) < 5 / std::sqrt(double(n)));
  REQUIRE(std::fabs(sn2 / n - 1) < 5 * std::sqrt(2.0 / n));
  const double p = 1.0 / 7, sd = std::sqrt(n * p * (1 - p));
  for (int b : bins) REQUIRE(std::fabs(b - n * p) < 5 * sd);
}

TEST_CASE("core: exact sums are order-independent and exact on the 2^-64 grid", "[core]") {
  std::vector<float> v = {1e8f, 1.0f, -1e8f, 3.0e-5f, 0.25f, -2.5e-3f};
  ExactAccumulator fwd(1), rev(1);
  for (float t : v) fwd.add(&t);
  for (auto it = v.rbegin(); it != v.rend(); ++it) rev.add(&*it);
  REQUIRE(fwd.data()[0] == rev.data()[0]);
  long double exact = 0;
  for (float t : v) exact += t;
  REQUIRE(fwd.value(0) == static_cast<double>(exact));
  // A float sum in this order loses the 1.0 entirely.
  float naive = 0;
  for (float t : v) naive += t;
  REQUIRE(naive != static_cast<float>(exact));
  // Weighted terms and negative numbers.
  ExactAccumulator w(1);
  const float three = 3.0f;
  w.add(&three, 2.5);
  w.add(&three, -0.5);
  REQUIRE(w.value(0) == 6.0);
  REQUIRE(w.valid());
}

TEST_CASE("core: non-finite and too-large terms invalidate an exact sum", "[core]") {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity(), 0x1.0p41f}) {
    ExactAccumulator acc(1);
    acc.add(&bad);
    REQUIRE_FALSE(acc.valid());
  }
  ExactAccumulator ok(1);
  const float big = 0x1.0p39f;
  ok.add(&big);
  REQUIRE(ok.valid());
  REQUIRE(ok.value(0) == 0x1.0p39);
}
