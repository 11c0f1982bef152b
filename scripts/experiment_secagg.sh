#!/usr/bin/env bash
# Experiment 2, the cost of secure aggregation: the protocol's bytes and compute seconds per client
# and for the server against the clients per round (10 to 1000) and the dropout rate (0, 0.1,
# 0.3), against the plain exchange (configs/secagg_cost.yaml: logistic regression with 610
# parameters, threshold a majority of each round's clients). Every run is one round on one rank.
# About 9 minutes on one core, most of it the 1000-client runs, whose pairwise key agreements
# grow as n^2.
# Writes results/secagg/{table.md, table.csv, cost.png}; the runs stay in sweeps/secagg (not
# committed).
#   TABLE_ONLY=1: run nothing, tabulate the runs present. SIZES="10 30": fewer sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
OUT=${OUT:-sweeps/secagg}
SIZES=${SIZES:-10 30 100 300 1000}
mkdir -p "$OUT"
if [ -z "${TABLE_ONLY:-}" ]; then
  for n in $SIZES; do
    "$COHORT" run configs/secagg_cost.yaml clients.per_round="$n" "secagg={name: none}" \
      output.path="$OUT/plain_n$n.h5" > "$OUT/plain_n$n.log"
    for p in 0 0.1 0.3; do
      "$COHORT" run configs/secagg_cost.yaml clients.per_round="$n" secagg.dropout="$p" \
        output.path="$OUT/secagg_n${n}_p$p.h5" > "$OUT/secagg_n${n}_p$p.log"
      echo "[secagg] n $n, dropout $p done"
    done
  done
fi
/usr/bin/python3 scripts/secagg_table.py "$OUT" results/secagg
