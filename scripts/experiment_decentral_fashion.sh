#!/usr/bin/env bash
# Choco-SGD against D-SGD on Fashion-MNIST (configs/decentral_fashion.yaml): 16 nodes, ring and
# 4 x 4 torus, logistic regression, Dirichlet(0.5). Choco's gamma is tuned over a small grid on
# each topology (best mean accuracy of the average model over the last 200 rounds). Writes
# results/decentral/fashion/ (table.md, accuracy.png); HDF5 files stay in /tmp.
# About 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
JOBS=${JOBS:-2}
OUT=results/decentral/fashion
H5=${H5:-/tmp/cohort_fashion}
mkdir -p "$OUT" "$H5"
CFG=configs/decentral_fashion.yaml
GAMMAS="0.05 0.1 0.2 0.4 0.8"
declare -A COMP=(
  [top10]="compressor.name=topk compressor.ratio=0.1"
  [top1]="compressor.name=topk compressor.ratio=0.01"
  [qsgd16]="compressor.name=qsgd compressor.levels=16 compressor.norm=max"
)
TORUS="topology.name=torus topology.rows=4 topology.cols=4"
# RESUME=1 skips the runs whose results file already exists.
run_all() {
  while read -r line; do
    f=${line##*output.path=}
    if [ "${RESUME:-0}" = 1 ] && [ -f "$f" ]; then continue; fi
    echo "$line"
  done < "$1" | xargs -P "$JOBS" -I{} sh -c '{} >/dev/null 2>&1 || true'
}
{
  for topo in ring torus; do
    extra=""
    [ $topo = torus ] && extra=$TORUS
    echo "$COHORT run --overwrite $CFG $extra output.path=$H5/dsgd_$topo.h5"
    for c in "${!COMP[@]}"; do
      for g in $GAMMAS; do
        echo "$COHORT run --overwrite $CFG $extra algorithm.name=choco_sgd algorithm.gamma=$g ${COMP[$c]} output.path=$H5/${c}_${topo}_g$g.h5"
      done
    done
  done
} > "$H5/commands.txt"
run_all "$H5/commands.txt"
/usr/bin/python3 scripts/decentral_fashion_table.py "$H5" "$OUT" "$GAMMAS"
