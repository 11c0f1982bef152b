// The models' product on every vector path this CPU has (Note [Model GEMM paths]): each path
// against a float64 reference within a rounding bound, and deterministic.
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "core/isa.h"
#include "core/rng.h"
#include "model/gemm.h"

using namespace cohort;
using model::detail::gemm;

namespace {

std::vector<float> values(std::int64_t n, std::uint32_t key) {
  Rng rng(7, key, 0, Purpose::kModelInit);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return v;
}

// Restores the automatic choice when a test ends.
struct PathGuard {
  ~PathGuard() { model::detail::set_gemm_isa(cpu_isa()); }
};

}  // namespace

TEST_CASE("The models' product is right on every path the CPU has", "[gemm]") {
  PathGuard guard;
  std::vector<Isa> paths{Isa::kGeneric};
  if (static_cast<int>(cpu_isa()) >= static_cast<int>(Isa::kAvx2)) paths.push_back(Isa::kAvx2);
  if (cpu_isa() == Isa::kAvx512) paths.push_back(Isa::kAvx512);
  const std::int64_t sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 576, 288},
                                   {130, 10, 129}, {32, 128, 784}};
  for (Isa path : paths) {
    model::detail::set_gemm_isa(path);
    REQUIRE(model::detail::gemm_isa() == path);
    for (const auto& sz : sizes) {
      const std::int64_t m = sz[0], n = sz[1], k = sz[2];
      const auto a = values(m * k, 1), b = values(k * n, 2), c0 = values(m * n, 3);
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (int acc = 0; acc < 2; ++acc) {
            std::vector<float> c = c0;
            gemm(ta, tb, m, n, k, a.data(), b.data(), acc, c.data());
            std::vector<float> again = c0;
            gemm(ta, tb, m, n, k, a.data(), b.data(), acc, again.data());
            CHECK(again == c);  // the same bits every time
            for (std::int64_t i = 0; i < m; ++i)
              for (std::int64_t j = 0; j < n; ++j) {
                double want = acc ? c0[i * n + j] : 0.0, bound = acc ? std::abs(want) : 0.0;
                for (std::int64_t l = 0; l < k; ++l) {
                  const double x = ta ? a[l * m + i] : a[i * k + l];
                  const double y = tb ? b[j * k + l] : b[l * n + j];
                  want += x * y;
                  bound += std::abs(x * y);
                }
                // A float32 sum of k + 1 terms in any order: within (k + 1) u of their
                // absolute sum, u = 2^-24.
                const double tol = static_cast<double>(k + 1) * 0x1p-24 * bound + 1e-30;
                INFO("path " << isa_name(path) << " m " << m << " n " << n << " k " << k
                             << " ta " << ta << " tb " << tb << " acc " << acc);
                REQUIRE(std::abs(c[i * n + j] - want) <= tol);
              }
          }
    }
  }
}

TEST_CASE("The models' product refuses a path the CPU lacks", "[gemm]") {
  PathGuard guard;
  if (cpu_isa() == Isa::kAvx512) return;  // every path exists here
  CHECK_THROWS(model::detail::set_gemm_isa(Isa::kAvx512));
}
