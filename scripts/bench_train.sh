#!/usr/bin/env bash
# Training throughput on one thread (`cohort bench train`) on every product path this CPU has
# (Note [Model GEMM paths]; COHORT_MODEL_ISA forces the path), each beside the sgemm rate that
# path reaches, into results/bench/train.<path>.txt and .json. results/bench_train.md records a
# run with its machine. About 2 minutes per path on an otherwise idle core.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
REPEATS=${REPEATS:-10}
OUT=results/bench
mkdir -p "$OUT"
paths=(generic)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && paths+=(avx2)
grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo &&
  grep -qw avx512dq /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && paths+=(avx512)
for p in "${paths[@]}"; do
  COHORT_MODEL_ISA=$p "$COHORT" bench train --repeats "$REPEATS" --json "$OUT/train.$p.json" |
    tee "$OUT/train.$p.txt"
done
