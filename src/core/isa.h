// Which vector instruction set the kernels use.
//
// Note [One ISA decision]
// Kernels with hand-vectorised paths (AVX-512, AVX2+FMA, and a generic one) ask active_isa()
// which to take; it is decided here and nowhere else. By default it is the best path the CPU
// has. The environment variable COHORT_ISA=avx512|avx2|generic forces a path, so one machine can
// run and benchmark all of them; naming a path the CPU lacks is a usage error (exit 2). Every
// path gives the same bits (the kernels' tests compare them), so the choice changes speed only.
#pragma once

#include <string>

namespace cohort {

enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// The best path this CPU supports (AVX-512 needs avx512f, avx512bw, avx512dq and avx512vl; AVX2
// needs avx2 and fma).
Isa cpu_isa();
// The path in use: a path forced by force_isa(), else COHORT_ISA, else cpu_isa(). Throws
// UsageError when COHORT_ISA is not a known name or names a path this CPU lacks.
Isa active_isa();
const char* isa_name(Isa isa);
// Forces a path (tests, benchmarks); "" returns to the automatic choice. Returns false, changing
// nothing, when the name is unknown or the CPU lacks the path.
bool force_isa(const std::string& name);

}  // namespace cohort
