// The avx2 path of the models' product (Note [Model GEMM paths]). CMakeLists.txt compiles this
// file alone with the path's instruction-set flags; Eigen is renamed to a namespace of its own
// here, so that its templates, instantiated with those flags, are not merged at link time with
// the generic instantiations the rest of the library makes.
#if defined(__x86_64__)
#define Eigen cohort_eigen_avx2
#include <Eigen/Core>

#include "model/gemm.h"

namespace cohort::model::detail {

void gemm_avx2(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                 const float* a, const float* b, bool accumulate, float* c)
#include "model/gemm_kernel.inc"

}  // namespace cohort::model::detail
#endif
