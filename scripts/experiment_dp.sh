#!/usr/bin/env bash
# Accuracy against the privacy budget for user-level DP-FedAvg (configs/dp_accuracy.yaml):
# Fashion-MNIST, 1000 clients, Poisson sampling with q = 0.1 (about 100 clients a round), MLP
# 784-128-10, C = 1, 200 rounds, delta = 1e-5. The noise multiplier is calibrated per target
# epsilon in {1, 2, 4, 8}; epsilon = infinity is the same clipping without noise; plain FedAvg
# (no clipping, no noise, the same Poisson sample) is the reference. Six runs, one after the
# other, about 2 minutes each on 2 cores.
# Writes results/dp/{table.md, table.csv, accuracy.png}; the run files stay in $H5.
#   TABLE_ONLY=1: run nothing, tabulate the runs present.  RESUME=1: skip the runs that completed.
#   NP=2: ranks per run (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
H5=${H5:-/tmp/cohort_dp}
NP=${NP:-1}
mkdir -p "$H5" results/dp
run() {  # name, overrides...
  local name=$1
  shift
  if [ "${RESUME:-0}" = 1 ] && grep -q '^completed' "$H5/$name.log" 2>/dev/null; then return; fi
  echo "[dp] $name"
  mpirun --allow-run-as-root --oversubscribe -np "$NP" "$COHORT" run --overwrite \
    configs/dp_accuracy.yaml output.path="$H5/$name.h5" "$@" > "$H5/$name.log" 2>&1
}
if [ -z "${TABLE_ONLY:-}" ]; then
  for eps in 1 2 4 8; do run "eps$eps" privacy.target_epsilon=$eps; done
  run eps_inf privacy.calibrate=false privacy.target_epsilon=.inf privacy.noise_multiplier=0
  run nodp "privacy={name: none}"
fi
/usr/bin/python3 scripts/dp_report.py "$H5" results/dp
