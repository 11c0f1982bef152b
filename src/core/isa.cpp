#include "core/isa.h"

#include <atomic>
#include <cstdlib>

#include "core/errors.h"

namespace cohort {
namespace {

std::atomic<int> g_forced{-1};

int parse(const std::string& name) {
  if (name == "avx512") return static_cast<int>(Isa::kAvx512);
  if (name == "avx2") return static_cast<int>(Isa::kAvx2);
  if (name == "generic") return static_cast<int>(Isa::kGeneric);
  return -1;
}

Isa from_environment() {
  const Isa cpu = cpu_isa();
  const char* v = std::getenv("COHORT_ISA");
  if (v == nullptr || *v == '\0') return cpu;
  const int want = parse(v);
  require_usage(want >= 0, std::string("COHORT_ISA=") + v +
                               " is not a path: use avx512, avx2 or generic (or leave it unset)");
  require_usage(want <= static_cast<int>(cpu),
                std::string("COHORT_ISA=") + v +
                    " names a path this CPU lacks; it supports up to " + isa_name(cpu));
  return static_cast<Isa>(want);
}

}  // namespace

Isa cpu_isa() {
  static const Isa detected = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
      return Isa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
    return Isa::kGeneric;
  }();
  return detected;
}

Isa active_isa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa chosen = from_environment();
  return chosen;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "generic";
  }
}

bool force_isa(const std::string& name) {
  if (name.empty()) {
    g_forced = -1;
    return true;
  }
  const int want = parse(name);
  if (want < 0 || want > static_cast<int>(cpu_isa())) return false;
  g_forced = want;
  return true;
}

}  // namespace cohort
