#!/usr/bin/env bash
# Robustness vs fairness without an attack: the mean and the worst-off clients' accuracy under
# robust aggregation rules (cm, tm, krum, gm, cclip) and q-FFL against the plain mean, on
# Fashion-MNIST with label skew (Dirichlet 0.3), logistic regression, 100 clients
# (configs/fairness.yaml, configs/sweeps/fairness.yaml): 45 runs of 600 rounds, two at a time,
# about 6 minutes on 2 cores. Runs already completed are skipped.
# Writes results/fairness/{table.md, table.csv, fairness.png}; the runs stay in
# sweeps/fairness (not committed).
#   TABLE_ONLY=1: run nothing, tabulate the runs present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
SWEEP=${SWEEP:-sweeps/fairness}
if [ -z "${TABLE_ONLY:-}" ]; then
  "$COHORT" sweep configs/sweeps/fairness.yaml --out "$SWEEP" --launcher local
fi
/usr/bin/python3 scripts/fairness_report.py "$SWEEP" results/fairness
