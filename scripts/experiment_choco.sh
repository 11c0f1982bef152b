#!/usr/bin/env bash
# Choco-Gossip on a ring (Koloskova, Stich and Jaggi 2019, the average-consensus figure): 25 nodes,
# d = 2000, x_i ~ N(0, I). Exact gossip against Choco-Gossip with top-1%, random-1% (biased: no
# d/k scaling) and QSGD with 16 levels; gamma tuned per compressor over a grid (the smallest
# consensus distance after the last round wins). Writes results/decentral/choco/ (curves.csv,
# gamma_grid.md, consensus.png); the HDF5 files stay in /tmp. The same on a 5 x 5 torus for exact
# gossip, top-1% and random-1% (dependence on the spectral gap). Naive compressed gossip with
# top-1% and random-1% over the same gamma grid, for the stall Choco avoids. About 5 minutes on
# 2 cores.
#   scripts/experiment_choco.sh            (COHORT=path/to/cohort to use another binary,
#                                           JOBS=n for parallel runs, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
JOBS=${JOBS:-2}
ROUNDS=${ROUNDS:-3000}
OUT=results/decentral/choco
H5=${H5:-/tmp/cohort_choco}
mkdir -p "$OUT" "$H5"
CFG=configs/choco_gossip_ring.yaml
GAMMAS="0.005 0.01 0.02 0.03 0.05 0.07 0.1 0.2 0.3 0.5 0.7 1.0"
declare -A COMP=(
  [top1]="compressor.name=topk compressor.ratio=0.01"
  [rand1]="compressor.name=randk compressor.ratio=0.01 compressor.unbiased=false"
  [qsgd16max]="compressor.name=qsgd compressor.levels=16 compressor.norm=max"
  [qsgd16l2]="compressor.name=qsgd compressor.levels=16 compressor.norm=l2"
)
{
  echo "$COHORT run --overwrite $CFG rounds=$ROUNDS output.path=$H5/exact.h5"
  for c in "${!COMP[@]}"; do
    for g in $GAMMAS; do
      echo "$COHORT run --overwrite $CFG rounds=$ROUNDS algorithm.name=choco_gossip algorithm.gamma=$g ${COMP[$c]} output.path=$H5/${c}_g$g.h5"
    done
  done
  # Naive compressed gossip (x_i += gamma sum_j w_ij (Q(x_j) - Q(x_i))) with the same compressors:
  # the baseline that stalls.
  for c in top1 rand1; do
    for g in $GAMMAS; do
      echo "$COHORT run --overwrite $CFG rounds=$ROUNDS algorithm.name=naive_gossip algorithm.gamma=$g ${COMP[$c]} output.path=$H5/naive_${c}_g$g.h5"
    done
  done
  # The same on a 5 x 5 torus (larger spectral gap): exact gossip and top-1%, for the gap dependence.
  T="topology.name=torus topology.rows=5 topology.cols=5"
  echo "$COHORT run --overwrite $CFG rounds=$ROUNDS $T output.path=$H5/torus_exact.h5"
  for g in $GAMMAS; do
    echo "$COHORT run --overwrite $CFG rounds=$ROUNDS $T algorithm.name=choco_gossip algorithm.gamma=$g ${COMP[top1]} output.path=$H5/torus_top1_g$g.h5"
    echo "$COHORT run --overwrite $CFG rounds=$ROUNDS $T algorithm.name=choco_gossip algorithm.gamma=$g ${COMP[rand1]} output.path=$H5/torus_rand1_g$g.h5"
  done
} > "$H5/commands.txt"
# A diverging run (qsgd with the l2 norm) exits non-zero; its file records where it stopped.
# RESUME=1 skips the runs whose results file already exists.
while read -r line; do
  f=${line##*output.path=}
  if [ "${RESUME:-0}" = 1 ] && [ -f "$f" ]; then continue; fi
  echo "$line"
done < "$H5/commands.txt" | xargs -P "$JOBS" -I{} sh -c '{} >/dev/null 2>&1 || true'
/usr/bin/python3 scripts/decentral_choco_plot.py "$H5" "$OUT" "$GAMMAS"
