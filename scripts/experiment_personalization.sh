#!/usr/bin/env bash
# Train alone or collaborate? Personalization methods (local, none = fedavg, finetune, ditto,
# ifca) against the label skew (Dirichlet alpha) on Fashion-MNIST with logistic regression, 100
# clients (configs/personalization.yaml, configs/sweeps/personalization.yaml): 90 runs of one
# rank, two at a time, about 10 minutes on 2 cores. Runs already completed are skipped.
# Writes results/personalization/{table.md, table.csv, crossover.png}; the runs stay in
# sweeps/personalization (not committed).
#   TABLE_ONLY=1: run nothing, tabulate the runs present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
SWEEP=${SWEEP:-sweeps/personalization}
if [ -z "${TABLE_ONLY:-}" ]; then
  "$COHORT" sweep configs/sweeps/personalization.yaml --out "$SWEEP" --launcher local
fi
/usr/bin/python3 scripts/personalization_report.py "$SWEEP" results/personalization
