// The generic path of the models' product, with the build's own flags, and the choice of path
// (Note [Model GEMM paths]).
#include "model/gemm.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include <Eigen/Core>

#include "core/errors.h"

namespace cohort::model::detail {

void gemm_generic(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                  const float* a, const float* b, bool accumulate, float* c)
#include "model/gemm_kernel.inc"

namespace {
std::atomic<int> g_path{-1};  // -1: follow active_isa()
}  // namespace

// COHORT_MODEL_ISA, when set: the path the models' products take whatever COHORT_ISA says.
int model_isa_from_environment() {
  const char* env = std::getenv("COHORT_MODEL_ISA");
  if (env == nullptr || *env == '\0') return -1;
  const std::string name = env;
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512})
    if (name == isa_name(isa)) {
      require_usage(static_cast<int>(isa) <= static_cast<int>(cpu_isa()),
                    "COHORT_MODEL_ISA=" + name + " names a path this CPU lacks (it has " +
                        isa_name(cpu_isa()) + "; paths: generic, avx2, avx512)");
      return static_cast<int>(isa);
    }
  throw UsageError("COHORT_MODEL_ISA=" + name + " is not a path (generic, avx2, avx512)");
}

Isa gemm_isa() {
  const int p = g_path.load(std::memory_order_relaxed);
  if (p >= 0) return static_cast<Isa>(p);
  const int env = model_isa_from_environment();
  return env >= 0 ? static_cast<Isa>(env) : active_isa();
}

void set_gemm_isa(Isa isa) {
  require_usage(static_cast<int>(isa) <= static_cast<int>(cpu_isa()),
                std::string("the model product path ") + isa_name(isa) +
                    " needs instructions this CPU lacks (it has " + isa_name(cpu_isa()) + ")");
  g_path.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
          const float* b, bool accumulate, float* c) {
  switch (gemm_isa()) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      return gemm_avx512(ta, tb, m, n, k, a, b, accumulate, c);
    case Isa::kAvx2:
      return gemm_avx2(ta, tb, m, n, k, a, b, accumulate, c);
#endif
    default:
      return gemm_generic(ta, tb, m, n, k, a, b, accumulate, c);
  }
}

}  // namespace cohort::model::detail
