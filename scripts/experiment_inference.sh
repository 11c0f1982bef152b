#!/usr/bin/env bash
# Experiment 3, inference attacks (docs/algorithms.md §6): what a client's gradient and a final
# model reveal without and with DP-SGD.
#  1. Gradient inversion on Fashion-MNIST (configs/dp_sgd_fashion.yaml: mlp with a dense first
#     layer, client 0 at the initial model): one sample without privacy, batches of 4 and 16,
#     and one sample under dp_sgd (C = 1, q = 0.05) with noise multipliers 1e-4 to 1, and under
#     dp_fedavg (C = 0.5, sigma = 1).
#  2. Membership inference (configs/inference_membership.yaml: 20 clients of 10 rows, an mlp
#     trained to overfit them): a run without privacy and dp_sgd runs (C = 1, q = 0.5)
#     calibrated to epsilon 2, 8, 32 and 128, then the loss-threshold attack's AUC on each final
#     model (the 200 members against 1000 test rows).
# About 2 minutes on 2 cores (the dp_sgd runs dominate). Runs already completed are skipped.
# Writes results/inference/{table.md, inversion.png, membership.png}; the runs stay in
# sweeps/inference (not committed).
#   TABLE_ONLY=1: run nothing, tabulate and plot the runs present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
RUNS=${RUNS:-sweeps/inference}
OUT=results/inference
mkdir -p "$RUNS" "$OUT"

if [ -z "${TABLE_ONLY:-}" ]; then
  fashion=configs/dp_sgd_fashion.yaml
  invert() {  # NAME BATCH OVERRIDES...
    local name=$1 batch=$2
    shift 2
    "$COHORT" attack-privacy invert --config "$fashion" "$@" --client 0 --batch "$batch" \
      --out "$RUNS/invert_$name.h5" > "$RUNS/invert_$name.log"
  }
  invert none_b1 1 "privacy={name: none}"
  invert none_b4 4 "privacy={name: none}"
  invert none_b16 16 "privacy={name: none}"
  for sigma in 0.0001 0.001 0.01 1; do
    invert "dpsgd_s${sigma}" 1 \
      "privacy={name: dp_sgd, clip: 1, sample_rate: 0.05, noise_multiplier: $sigma}"
  done
  invert dpfedavg_s1 1 "privacy={name: dp_fedavg, clip: 0.5, noise_multiplier: 1}" \
    clients.sampling=poisson clients.fraction=0.1 clients.per_round=0

  member=configs/inference_membership.yaml
  completed() {  # H5: a results file of a completed run
    [ -f "$1" ] && /usr/bin/python3 -c \
      'import sys, h5py; sys.exit(h5py.File(sys.argv[1], "r").attrs["status"] != "completed")' "$1"
  }
  train() {  # NAME PRIVACY
    local h5="$RUNS/membership_$1.h5"
    if ! completed "$h5"; then
      "$COHORT" run "$member" "$2" output.path="$h5" --overwrite > "$RUNS/membership_$1.log"
    fi
    "$COHORT" attack-privacy membership --run "$h5" --samples 1000 > "$RUNS/membership_$1.auc"
  }
  train none "privacy={name: none}"
  for eps in 2 8 32 128; do
    train "eps$eps" \
      "privacy={name: dp_sgd, clip: 1, sample_rate: 0.5, target_epsilon: $eps, calibrate: true}"
  done
fi
/usr/bin/python3 scripts/inference_report.py "$RUNS" "$OUT"
