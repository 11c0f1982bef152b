#!/usr/bin/env bash
# Compressor and aggregator throughput beside the numpy reference: runs `cohort bench compress`,
# `cohort bench aggregate` (1 and 2 threads) and scripts/bench_reference.py, then writes
# results/bench_compress.md and results/bench_aggregate.md (scripts/bench_tables.py).
# About 5 minutes on 2 cores; needs ~5 GB of memory (n = 25 x d = 1.1e7 and numpy's copies).
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
mkdir -p results/bench
"$COHORT" bench compress --repeats 10 --json results/bench_compress.json | tee results/bench/compress.txt
"$COHORT" bench aggregate --sizes 1e5,1e6,1.1e7 --clients 10,25,100 --threads 1,2 --repeats 3 \
  --json results/bench_aggregate.json | tee results/bench/aggregate.txt
/usr/bin/python3 scripts/bench_reference.py --clients 10,25,100 --sizes 1e5,1e6 \
  --compress-sizes 1e5,1e6,1.1e7 --repeats 3 --json results/bench_reference.json \
  | tee results/bench/reference.txt
/usr/bin/python3 scripts/bench_tables.py
