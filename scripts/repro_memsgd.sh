#!/usr/bin/env bash
# Mem-SGD (Stich, Cordonnier, Jaggi, NeurIPS 2018), convex setting: L2-regularised logistic
# regression with batch-1 SGD, the 1/t step gamma/(lambda (t + a)) and (a + t)^2-weighted
# iterate averaging; SGD against top-1% and rand-1% of the update, with and without memory
# (configs/repro/memsgd/memsgd.yaml). The data set is generated here (epsilon-like, dense,
# 10,000 x 500, scripts/make_logreg_libsvm.py, seed 1); seeds change the SGD sample order and
# rand-k's coordinates.
#   MODE=quick  1 seed, 3 epochs (about 1 minute on 2 cores)
#   MODE=full   3 seeds, 10 epochs (about 6 minutes)
# Writes results/repro/memsgd/{table.md, curves.csv, suboptimality.png, f_star.json}; run files
# stay in $H5. TABLE_ONLY=1 redraws from the runs present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
MODE=${MODE:-quick}
H5=${H5:-/tmp/cohort_memsgd}
OUT=results/repro/memsgd
CFG=configs/repro/memsgd/memsgd.yaml
JOBS=${JOBS:-2}
mkdir -p "$H5" "$OUT"
SVM=$H5/epsilon_like.svm
[ -f "$SVM" ] || /usr/bin/python3 scripts/make_logreg_libsvm.py "$SVM" --rows 10000 --dim 500 --scale 3 --seed 1
case $MODE in
  quick) SEEDS="1"; ROUNDS=30000 ;;
  full) SEEDS="1 2 3"; ROUNDS=100000 ;;
  *) echo "MODE must be quick or full" >&2; exit 2 ;;
esac
declare -A COMP=(
  [sgd]="compressor={name: none}"
  [topk_mem]="compressor={name: topk, ratio: 0.01, scope: global, error_feedback: true}"
  [randk_mem]="compressor={name: randk, ratio: 0.01, scope: global, error_feedback: true}"
  [topk]="compressor={name: topk, ratio: 0.01, scope: global}"
  [randk]="compressor={name: randk, ratio: 0.01, scope: global}"
)
if [ -z "${TABLE_ONLY:-}" ]; then
  rm -f "$H5"/*_s*.h5
  for m in sgd topk_mem randk_mem topk randk; do
    for s in $SEEDS; do
      printf '%s\0' "$COHORT run --overwrite $CFG seed=$s rounds=$ROUNDS data.path=$SVM data.test_path=$SVM output.path=$H5/${m}_s$s.h5 '${COMP[$m]}'"
    done
  done | xargs -0 -P "$JOBS" -I{} sh -c '{} > /dev/null'
fi
/usr/bin/python3 scripts/repro_memsgd_report.py "$H5" "$OUT" "$SVM" 1e-4
