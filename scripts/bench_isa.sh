#!/usr/bin/env bash
# AVX-512 and AVX2 paths of the same kernels side by side on one machine (Note [One ISA
# decision]): runs `cohort bench aggregate` (n = 25, d = 1e6) and `cohort bench compress`
# (d = 1e6, 1.1e7) ROUNDS times with COHORT_ISA=avx512 then COHORT_ISA=avx2, interleaved so both
# see the same load, each run measuring the memory bandwidth itself; then writes
# results/bench_isa.md (scripts/bench_isa_table.py) with the range over the rounds and the
# AVX2 / AVX-512 ratio. Needs a CPU with AVX-512; about 1 minute per round on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
ROUNDS=${ROUNDS:-3}
out=results/bench/isa
rm -rf "$out"
mkdir -p "$out"
for round in $(seq 1 "$ROUNDS"); do
  for isa in avx512 avx2; do
    COHORT_ISA=$isa "$COHORT" bench aggregate --sizes 1e6 --clients 25 --repeats 5 \
      --megabytes 64 --json "$out/aggregate.$isa.$round.json" | tee -a "$out/aggregate.$isa.txt"
    COHORT_ISA=$isa "$COHORT" bench compress --sizes 1e6,1.1e7 --repeats 5 --megabytes 64 \
      --json "$out/compress.$isa.$round.json" | tee -a "$out/compress.$isa.txt"
  done
done
/usr/bin/python3 scripts/bench_isa_table.py "$out" "$ROUNDS"
