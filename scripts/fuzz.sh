#!/usr/bin/env bash
# A fuzzing campaign: builds the libFuzzer targets of tests/fuzz (build-fuzz/, clang-16, the
# library under ASan and UBSan) and runs each harness for SECONDS, one after the other.
#
#   scripts/fuzz.sh SECONDS [HARNESS...]      (no harness named: all of them)
#
# Needs the Debian packages clang-16, libfuzzer-16-dev and libclang-rt-16-dev (the normal build
# and scripts/test.sh do not). Each harness starts from the committed corpus
# (tests/fuzz/corpus/<harness>/) and keeps what it finds in build-fuzz/corpus/<harness>/; a crash,
# leak, UB report or timeout leaves its input in build-fuzz/artifacts/<harness>/ and the report in
# build-fuzz/logs/<harness>.log. Minimize one with
#   build-fuzz/tests/fuzz/fuzz_<harness> -minimize_crash=1 -runs=10000 <input>
# and add it to tests/fuzz/corpus/<harness>/ so that the fuzz.replay test holds the fix.
# The exit status is 1 when some harness found something.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
secs=${1:?usage: scripts/fuzz.sh SECONDS [HARNESS...]}
shift
all=(config sweep idx libsvm hdf5_input checkpoint state)
harnesses=("$@")
[[ $# -gt 0 ]] || harnesses=("${all[@]}")

cxx=${COHORT_FUZZ_CXX:-clang++-16}
cc=${COHORT_FUZZ_CC:-clang-16}
command -v "$cxx" >/dev/null || {
  echo "fuzz: $cxx not found (apt-get install clang-16 libfuzzer-16-dev libclang-rt-16-dev)" >&2
  exit 2
}
echo "[fuzz] building (build-fuzz/, $cxx, ASan + UBSan)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_C_COMPILER="$cc" -DCOHORT_FUZZ=ON -DCOHORT_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j "${COHORT_BUILD_JOBS:-$(nproc)}" \
  --target $(printf 'fuzz_%s ' "${harnesses[@]}")

mkdir -p build-fuzz/logs
found=()
for h in "${harnesses[@]}"; do
  mkdir -p "build-fuzz/corpus/$h" "build-fuzz/artifacts/$h"
  echo "[fuzz] $h: ${secs}s"
  # Leaks are reported (LeakSanitizer; tests/fuzz/lsan.supp lists those inside libraries); an input that takes over 25 s or 2 GiB counts as a finding.
  dict=()
  [[ $h == config || $h == sweep ]] && dict=(-dict=tests/fuzz/yaml.dict)
  rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
  LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=tests/fuzz/lsan.supp:print_suppressions=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "build-fuzz/tests/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
    -close_fd_mask=1 -print_final_stats=1 "${dict[@]}" -artifact_prefix="build-fuzz/artifacts/$h/" \
    "build-fuzz/corpus/$h" "tests/fuzz/corpus/$h" >"build-fuzz/logs/$h.log" 2>&1 || rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "build-fuzz/logs/$h.log" |
    sed "s/^/[fuzz] $h: /" || true
  if [[ $rc -ne 0 ]]; then
    echo "[fuzz] $h: FOUND something (exit $rc): build-fuzz/logs/$h.log, build-fuzz/artifacts/$h/"
    found+=("$h")
  fi
done
if [[ ${#found[@]} -gt 0 ]]; then
  echo "[fuzz] findings in: ${found[*]}"
  exit 1
fi
echo "[fuzz] no findings"
