#!/usr/bin/env bash
# FedAvg (McMahan et al., AISTATS 2017), Table 2: communication rounds until the global model
# first reaches a target test accuracy, FedAvg with E local epochs of minibatch B against FedSGD
# (E = 1, B = infinity), on an IID and a pathological non-IID split (two label shards of 300 per
# client); 100 clients, C = 0.1 (configs/repro/fedavg/{2nn,cnn}.yaml). Runs stop at the target
# (eval.stop_at_accuracy), so a row costs what reaching the target costs.
#   MODEL=2nn   the paper's 2NN (784-200-200-10), its rows E in {1, 10, 20}. IID: target 0.87,
#               learning rates 0.05 0.1 0.2 (and 0.4 for B = infinity), cap 3000 rounds;
#               non-IID: target 0.80, learning rate 0.1, cap 2000 rounds
#   MODEL=cnn   the paper's CNN (1,663,370 parameters), its rows E in {1, 5, 20}: target 0.85,
#               learning rate 0.05, cap 1000 rounds (FedSGD: 400, evaluated every 5 rounds)
#   MODE=quick  the IID split, FedSGD and E = 1 and 20 with B = 10, seed 1, first learning rate
#               (2NN: about a minute on 2 cores)
#   MODE=full   both splits, the nine (E, B) rows, seeds 1 2 3 (2NN: 117 runs, about an hour on
#               2 cores; the CNN costs 4-6 s a round at E = 1 and about 90 s at E = 20: see
#               results/repro/fedavg/README.md for what it took and what the rest would take)
# Overrides: SPLITS, ROWS ("E:B ..." with B = inf for the full batch), SEEDS, TARGET (both
# splits), LRS (every row), ROUNDS (the cap), EVAL_EVERY (rounds between evaluations; more is
# cheaper, and rounds then count to the next evaluation). With several learning rates the table
# keeps, per row and split, the one with the fewest mean rounds, as the paper does. Finished runs
# are skipped (resumable; a run counts when it ran to this target or a higher one).
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
# Per model and split: target, learning rates (minibatch rows; full-batch rows), cap, eval.every
# (minibatch; full batch).
case $MODEL in
  2nn) FULL_ROWS="1:inf 10:inf 1:50 20:inf 1:10 10:50 20:50 10:10 20:10"
       declare -A T=([iid]=0.87 [noniid]=0.80) LR_MB=([iid]="0.1 0.05 0.2" [noniid]="0.1")
       declare -A LR_FB=([iid]="0.2 0.05 0.1 0.4" [noniid]="0.1") CAP=([iid]=3000 [noniid]=2000)
       CAP_FB=(); EV_FB=1 ;;
  cnn) FULL_ROWS="1:inf 5:inf 1:50 20:inf 1:10 5:50 20:50 5:10 20:10"
       declare -A T=([iid]=0.85 [noniid]=0.85) LR_MB=([iid]=0.05 [noniid]=0.05)
       declare -A LR_FB=([iid]=0.05 [noniid]=0.05) CAP=([iid]=1000 [noniid]=1000)
       CAP_FB=400; EV_FB=5 ;;
  *) echo "MODEL must be 2nn or cnn" >&2; exit 2 ;;
esac
CFG=configs/repro/fedavg/$MODEL.yaml
case $MODE in
  quick) SPLITS=${SPLITS:-"iid"}; ROWS=${ROWS:-"1:inf 1:10 20:10"}; SEEDS=${SEEDS:-"1"}
         for s in iid noniid; do LR_MB[$s]=${LR_MB[$s]%% *}; LR_FB[$s]=${LR_FB[$s]%% *}; done ;;
  full) SPLITS=${SPLITS:-"iid noniid"}; ROWS=${ROWS:-$FULL_ROWS}; SEEDS=${SEEDS:-"1 2 3"} ;;
  *) echo "MODE must be quick or full" >&2; exit 2 ;;
esac
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
              float(a.get('stop_at_accuracy', 0)) >= float(sys.argv[2])))" "$1" "$2" 2>/dev/null
}
if [ -z "${TABLE_ONLY:-}" ]; then
  start=$(date +%s)
  for seed in $SEEDS; do
    for split in $SPLITS; do
      target=${TARGET:-${T[$split]}}
      for row in $ROWS; do
        E=${row%%:*}; B=${row##*:}
        batch=$B lrs=${LR_MB[$split]} cap=${CAP[$split]} every=1
        if [ "$B" = inf ]; then
          batch=0 lrs=${LR_FB[$split]}
          # FedSGD's long runs: their own cap and sparser evaluation.
          [ "$E" = 1 ] && cap=${CAP_FB:-$cap} every=$EV_FB
        fi
        lrs=${LRS:-$lrs} cap=${ROUNDS:-$cap} every=${EVAL_EVERY:-$every}
        for lr in $lrs; do
          f="$H5/${split}_E${E}_B${B}_lr${lr}_seed${seed}.h5"
          done_ok "$f" "$target" && continue
          echo "[fedavg] $MODEL $(basename "$f" .h5) ($(( ($(date +%s) - start) / 60 )) min so far)"
          # shellcheck disable=SC2086
          mpirun -np "$NP" "$COHORT" run --overwrite "$CFG" seed="$seed" rounds="$cap" \
            ${SPLIT[$split]} algorithm.local_epochs="$E" algorithm.batch_size="$batch" \
            algorithm.local_lr="$lr" eval.every="$every" eval.stop_at_accuracy="$target" \
            output.path="$f" > "${f%.h5}.log" 2>&1 || true
        done
      done
    done
  done
  echo "[fedavg] done in $(( ($(date +%s) - start) / 60 )) min"
fi
/usr/bin/python3 scripts/repro_fedavg_report.py "$H5" "$OUT" "$MODEL" "${REPORT_TARGETS:-0.85,0.8}"
