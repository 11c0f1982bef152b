#!/usr/bin/env bash
# EF-signSGD (Karimireddy et al., ICML 2019), the batch-size table: one worker, B in {8, 32, 128},
# SGDm, Signum, scaled sign and EF scaled sign (EF-signSGD), three learning rates each
# (configs/repro/ef_signsgd/ef_signsgd.yaml; Fashion-MNIST and an MLP stand in for CIFAR-10 and
# the paper's networks).
#   MODE=quick  1 seed, 2 epochs   (36 runs; about 15 minutes on 2 otherwise idle cores)
#   MODE=full   3 seeds, 5 epochs  (108 runs; about 1 hour)
# Writes results/repro/ef_signsgd/{table_MODE.md, runs_MODE.csv, accuracy_MODE.png}; run files
# stay in $H5.
# Runs whose results file says completed are skipped, so an interrupted sweep resumes;
# TABLE_ONLY=1 redraws from the runs present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
MODE=${MODE:-quick}
H5=${H5:-/tmp/cohort_ef_signsgd/$MODE}
OUT=results/repro/ef_signsgd
CFG=configs/repro/ef_signsgd/ef_signsgd.yaml
JOBS=${JOBS:-2}
mkdir -p "$H5" "$OUT"
case $MODE in
  quick) SEEDS="1"; EPOCHS=2 ;;
  full) SEEDS="1 2 3"; EPOCHS=5 ;;
  *) echo "MODE must be quick or full" >&2; exit 2 ;;
esac
# method -> overrides; and its three learning rates (the server's step size)
declare -A OV=(
  [sgdm]="algorithm.client_momentum=0.9 compressor.name=none"
  [signum]="algorithm.client_momentum=0.9 compressor.name=sign"
  [ssign]="algorithm.client_momentum=0 compressor.name=sign compressor.scale=l1"
  [ef_ssign]="algorithm.client_momentum=0 compressor.name=sign compressor.scale=l1 compressor.error_feedback=true"
)
# quick: one grid per method. full: each (method, B) grid is centred on the best rate of the
# quick mode (x 1/3, x 1, x 3), so that no best rate sits at the edge of its grid.
declare -A LRS=(
  [sgdm]="0.003 0.01 0.03"
  [signum]="0.0001 0.0003 0.001"
  [ssign]="0.03 0.1 0.3"
  [ef_ssign]="0.03 0.1 0.3"
)
declare -A FULL=(
  [sgdm_8]="0.001 0.003 0.01" [sgdm_32]="0.003 0.01 0.03" [sgdm_128]="0.01 0.03 0.1"
  [signum_8]="0.00003 0.0001 0.0003" [signum_32]="0.00003 0.0001 0.0003" [signum_128]="0.00003 0.0001 0.0003"
  [ssign_8]="0.01 0.03 0.1" [ssign_32]="0.01 0.03 0.1" [ssign_128]="0.03 0.1 0.3"
  [ef_ssign_8]="0.01 0.03 0.1" [ef_ssign_32]="0.03 0.1 0.3" [ef_ssign_128]="0.1 0.3 1"
)
if [ -z "${TABLE_ONLY:-}" ]; then
  for b in 8 32 128; do
    rounds=$((EPOCHS * 60000 / b))
    every=$((60000 / b))
    for m in sgdm signum ssign ef_ssign; do
      if [ "$MODE" = full ]; then grid=${FULL[${m}_$b]}; else grid=${LRS[$m]}; fi
      for lr in $grid; do
        for s in $SEEDS; do
          f="$H5/${m}_b${b}_lr${lr}_s$s.h5"
          if [ -f "$f" ] && /usr/bin/python3 -c "import h5py,sys; sys.exit(h5py.File('$f','r').attrs['status'] not in ('completed','diverged'))" 2>/dev/null; then continue; fi
          printf '%s\0' "$COHORT run --overwrite $CFG seed=$s rounds=$rounds eval.every=$every algorithm.batch_size=$b server_optimizer.lr=$lr ${OV[$m]} output.path=$f"
        done
      done
    done
  done | xargs -0 -P "$JOBS" -I{} sh -c '{} > /dev/null 2>&1 || true'
fi
/usr/bin/python3 scripts/repro_ef_signsgd_report.py "$H5" "$OUT" "$MODE"
