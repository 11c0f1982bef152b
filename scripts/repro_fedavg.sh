#!/usr/bin/env bash
# FedAvg (McMahan et al., AISTATS 2017), Table 2: communication rounds until the global model
# first reaches a target test accuracy, FedAvg with E local epochs of minibatch B against FedSGD
# (E = 1, B = infinity), on an IID and a pathological non-IID split (two label shards of 300 per
# client); 100 clients, C = 0.1 (configs/repro/fedavg/{2nn,cnn}.yaml). Runs stop at the target
# (eval.stop_at_accuracy), so a row costs what reaching the target costs.
#   MODEL=2nn   the paper's 2NN (784-200-200-10), its rows E in {1, 10, 20}; target 0.85
#   MODEL=cnn   the paper's CNN (1,663,370 parameters), its rows E in {1, 5, 20}; target 0.85
#   MODE=quick  the IID split, FedSGD and E = 1 and 20 with B = 10, seed 1 (2NN: about 1 minute)
#   MODE=full   both splits, the nine (E, B) rows, seeds 1 2 3 (2NN: about 40 minutes on 2
#               cores; the CNN is about 70 times dearer per sample and its FedSGD rows need
#               hundreds of rounds: several days on 2 cores, see results/repro/fedavg/README.md)
# SPLITS, ROWS ("E:B ..." with B = inf for the full batch), LRS, SEEDS, TARGET, ROUNDS (the cap)
# and EVAL_EVERY (rounds between evaluations, 1: the exact first round; more: cheaper for the
# CNN's long FedSGD runs, rounds then counted to the next evaluation) narrow or change the grid; with several learning rates the table keeps, per row and split,
# the one with the fewest mean rounds, as the paper does. Finished runs are skipped (resumable).
# Writes results/repro/fedavg/{runs,table}_MODEL.{csv,md} and rounds_MODEL.png from every run in
# $H5, with columns for each target the runs stopped at and for REPORT_TARGETS (comma-separated,
# default 0.85,0.8). TABLE_ONLY=1 redraws from the runs present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
MODE=${MODE:-quick}
MODEL=${MODEL:-2nn}
NP=${NP:-2}
H5=${H5:-/tmp/cohort_fedavg/$MODEL}
OUT=results/repro/fedavg
case $MODEL in
  2nn) FULL_ROWS="1:inf 10:inf 1:50 20:inf 1:10 10:50 20:50 10:10 20:10"; CAP=3000 ;;
  cnn) FULL_ROWS="1:inf 5:inf 1:50 20:inf 1:10 5:50 20:50 5:10 20:10"; CAP=1000 ;;
  *) echo "MODEL must be 2nn or cnn" >&2; exit 2 ;;
esac
CFG=configs/repro/fedavg/$MODEL.yaml
case $MODE in
  quick) SPLITS=${SPLITS:-"iid"}; ROWS=${ROWS:-"1:inf 1:10 20:10"}; SEEDS=${SEEDS:-"1"} ;;
  full) SPLITS=${SPLITS:-"iid noniid"}; ROWS=${ROWS:-$FULL_ROWS}; SEEDS=${SEEDS:-"1 2 3"} ;;
  *) echo "MODE must be quick or full" >&2; exit 2 ;;
esac
LRS=${LRS:-0.1}
TARGET=${TARGET:-0.85}
ROUNDS=${ROUNDS:-$CAP}
EVAL_EVERY=${EVAL_EVERY:-1}
mkdir -p "$H5" "$OUT"
declare -A SPLIT=(
  [iid]="data.partition.name=iid"
  [noniid]="data.partition.name=shards data.partition.shards_per_client=2"
)
# A run is done when its file says completed (the target reached, or the cap) or diverged, and it
# ran to this target or a higher one.
done_ok() {
  [ -f "$1" ] && /usr/bin/python3 -c "
import h5py, sys
a = h5py.File(sys.argv[1], 'r').attrs
sys.exit(not (a['status'] in ('completed', 'diverged') and
              float(a.get('stop_at_accuracy', 0)) >= float(sys.argv[2])))" "$1" "$TARGET" 2>/dev/null
}
if [ -z "${TABLE_ONLY:-}" ]; then
  start=$(date +%s)
  for seed in $SEEDS; do
    for split in $SPLITS; do
      for row in $ROWS; do
        E=${row%%:*}; B=${row##*:}
        batch=$B; [ "$B" = inf ] && batch=0
        for lr in $LRS; do
          f="$H5/${split}_E${E}_B${B}_lr${lr}_seed${seed}.h5"
          done_ok "$f" && continue
          echo "[fedavg] $MODEL $(basename "$f" .h5) ($(( ($(date +%s) - start) / 60 )) min so far)"
          # shellcheck disable=SC2086
          mpirun -np "$NP" "$COHORT" run --overwrite "$CFG" seed="$seed" rounds="$ROUNDS" \
            ${SPLIT[$split]} algorithm.local_epochs="$E" algorithm.batch_size="$batch" \
            algorithm.local_lr="$lr" eval.every="$EVAL_EVERY" eval.stop_at_accuracy="$TARGET" \
            output.path="$f" \
            > "${f%.h5}.log" 2>&1 || true
        done
      done
    done
  done
  echo "[fedavg] done in $(( ($(date +%s) - start) / 60 )) min"
fi
/usr/bin/python3 scripts/repro_fedavg_report.py "$H5" "$OUT" "$MODEL" "${REPORT_TARGETS:-0.85,0.8}"
