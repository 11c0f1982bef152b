// The models' matrix products, on the widest vector path all ranks share (Note [Model GEMM
// paths]).
#pragma once

#include <cstdint>

#include "core/isa.h"

namespace cohort::model::detail {

// Note [Model GEMM paths]
// Training is matrix products (dense layers, and convolutions as im2col products), so their
// speed is the models' speed. The product is Eigen's GEMM compiled three times: for the generic
// path (the build's own flags, SSE2 on x86-64), for AVX2+FMA and for AVX-512 (gemm_avx2.cpp,
// gemm_avx512.cpp, each with its own instruction-set flags and Eigen in a namespace of its own,
// so the three copies of Eigen's templates never meet at link time). The path follows the one
// ISA decision (Note [One ISA decision]; COHORT_ISA forces it); COHORT_MODEL_ISA forces this
// path alone, so that the hand-written kernels' paths can be compared with this one held fixed.
// Unlike the hand-written kernels, the paths do not give the same bits: FMA rounds once where
// SSE2 rounds twice, and Eigen sizes its blocks by the register width. So a run takes the
// lowest path any of its ranks has (run_state.cpp agrees on it with a min all-reduce before
// training), which keeps the results the same at every rank count and thread count on a mixed
// cluster, and the results file (attribute model_gemm) and the start-up banner name the path.
// Two machines on different paths give different bits; COHORT_MODEL_ISA=generic gives the
// generic path's bits on any x86-64 machine. Each product is single-threaded
// (EIGEN_DONT_PARALLELIZE), so client threads stay independent.

// C (m x n) = op(A) op(B) (beta = 0) or C += op(A) op(B) (beta = 1), all row-major and
// contiguous: op(A) is m x k (A stored k x m when ta), op(B) is k x n (B stored n x k when tb).
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
          const float* b, bool accumulate, float* c);

// The path gemm() takes: set_gemm_isa()'s if called, else COHORT_MODEL_ISA's, else
// active_isa(). Throws UsageError for a COHORT_MODEL_ISA that is unknown or that the CPU lacks.
Isa gemm_isa();
// Sets the path (the run's agreed one; tests and benchmarks); Throws UsageError when this CPU
// lacks it.
void set_gemm_isa(Isa isa);

// One path's product (gemm_generic.cpp, gemm_avx2.cpp, gemm_avx512.cpp).
void gemm_generic(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                  const float* a, const float* b, bool accumulate, float* c);
#if defined(__x86_64__)
void gemm_avx2(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
               const float* b, bool accumulate, float* c);
void gemm_avx512(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                 const float* a, const float* b, bool accumulate, float* c);
#endif

}  // namespace cohort::model::detail
