#!/usr/bin/env bash
# Gossip-round benchmark: one D-SGD round of 1,024 nodes x 100,000 parameters
# (configs/bench_gossip.yaml) on a ring and on the exponential graph at 1 and 2 ranks: seconds per
# round by phase, bytes that cross ranks, peak memory per rank; beside the all-reduce of one
# 100,000-float model (`cohort bench exchange`). Writes results/bench_gossip.md. A few minutes and
# about 2 GB per rank on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
H5=${H5:-/tmp/cohort_bench_gossip}
mkdir -p "$H5"
CFG=configs/bench_gossip.yaml
cat /proc/loadavg > "$H5/loadavg_before"
for topo in ring exponential; do
  for np in 1 2; do
    echo "[bench] $topo np $np"
    mpirun --allow-run-as-root --oversubscribe -np "$np" "$COHORT" run --overwrite "$CFG" \
      topology.name=$topo output.path="$H5/${topo}_np$np.h5" > "$H5/${topo}_np$np.log" 2>&1
  done
done
echo "[bench] exchange"
"$COHORT" bench exchange --size 1e5 --np 2 --repeats 20 --json "$H5/exchange.json" \
  > "$H5/exchange.log" 2>&1
cat /proc/loadavg > "$H5/loadavg_after"
/usr/bin/python3 scripts/bench_gossip_table.py "$H5" "$COHORT" > results/bench_gossip.md
cat results/bench_gossip.md
