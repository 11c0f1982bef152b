#!/usr/bin/env bash
# Client drift experiments (results/drift/README.md):
#   figure2  two 2-D quadratic clients, K = 3: the iterate paths of FedAvg with server momentum
#            and of Mime (beta = 0.5) over the clients' contours (Mime paper, Fig. 2);
#            results/drift/figure2.png. A few seconds.
#   scale    fedavg, fedavgm, fedprox, scaffold, mime, mimelite at K = 1, 5, 20 local steps on
#            Fashion-MNIST (Dirichlet 0.1) and synthetic(1, 1), logistic regression, 100 clients,
#            10 a round, 3 seeds, and mime/mimelite at K = 20 with a third of the local rate:
#            six `cohort sweep`s into sweeps/drift_*, then results/drift/{table.md, table.csv,
#            *.png}. About 8 minutes with 2 runs at a time on 2 cores.
# Usage: scripts/experiment_drift.sh [figure2|scale|all]   (default all)
#   COHORT=path/to/cohort (default build/cohort), JOBS=runs at once (default 2).
# The sweeps resume: runs already completed with the same config are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
JOBS=${JOBS:-2}
PART=${1:-all}
OUT=results/drift
mkdir -p "$OUT"
case "$PART" in figure2|scale|all) ;; *) echo "usage: $0 [figure2|scale|all]" >&2; exit 2 ;; esac

if [[ $PART == figure2 || $PART == all ]]; then
  for alg in fedavgm mime; do
    echo "[drift] figure 2: $alg"
    "$COHORT" run --overwrite "configs/figure2_$alg.yaml" | tail -1
  done
  /usr/bin/python3 scripts/plot_drift.py "$OUT/figure2_fedavgm.h5" "$OUT/figure2_mime.h5" \
    --labels "FedAvg + server momentum (β=0.5),Mime (β=0.5)" -o "$OUT/figure2.png"
fi

if [[ $PART == scale || $PART == all ]]; then
  sweeps=()
  for s in fmnist fmnist_fedprox fmnist_mime_lr synthetic synthetic_fedprox synthetic_mime_lr; do
    echo "[drift] sweep drift_$s"
    "$COHORT" sweep "configs/sweeps/drift_$s.yaml" --out "sweeps/drift_$s" --launcher local \
      --jobs "$JOBS" | tail -2
    /usr/bin/python3 scripts/collect.py "sweeps/drift_$s" > /dev/null
    sweeps+=("sweeps/drift_$s")
  done
  /usr/bin/python3 scripts/drift_scale.py "${sweeps[@]}" --out "$OUT"
fi
