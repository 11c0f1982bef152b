#!/usr/bin/env bash
# signSGD with majority vote against SGD under sign-flipping adversaries (Bernstein et al., ICLR
# 2019; configs/repro/signsgd_vote/vote.yaml): 7 workers, k = 0..3 adversaries. First the step
# sizes are tuned at k = 0 (majority vote: 1e-4, 3e-4, 1e-3, 3e-3; SGD: 0.03, 0.1, 0.3; best final
# accuracy of seed 1, a diverged run never wins); then, at the tuned rates, majority vote and SGD
# (mean) against adversaries that send -u (scale 1) and, for SGD, -10 u (scale 10: majority vote
# only sees signs, so a scale changes nothing for it).
#   MODE=quick  1 seed, 600 rounds;  MODE=full  3 seeds, 1500 rounds (about 15 minutes on 2 cores)
# Writes results/repro/signsgd_vote/{tuning_MODE.md, table_MODE.md, accuracy_MODE.png}; run files
# stay in $H5. TABLE_ONLY=1 redraws.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
MODE=${MODE:-quick}
H5=${H5:-/tmp/cohort_vote/$MODE}
OUT=results/repro/signsgd_vote
CFG=configs/repro/signsgd_vote/vote.yaml
JOBS=${JOBS:-2}
mkdir -p "$H5" "$OUT"
case $MODE in
  quick) SEEDS="1"; ROUNDS=600 ;;
  full) SEEDS="1 2 3"; ROUNDS=1500 ;;
  *) echo "MODE must be quick or full" >&2; exit 2 ;;
esac
VOTE="'compressor={name: sign}' aggregator.name=majority"
SGD="'compressor={name: none}' aggregator.name=mean"
run_all() { xargs -0 -P "$JOBS" -I{} sh -c '{} > /dev/null 2>&1 || true'; }
if [ -z "${TABLE_ONLY:-}" ]; then
  {
    for lr in 0.0001 0.0003 0.001 0.003; do
      printf '%s\0' "$COHORT run --overwrite $CFG rounds=$ROUNDS seed=1 server_optimizer.lr=$lr $VOTE output.path=$H5/tune_vote_lr$lr.h5"
    done
    for lr in 0.03 0.1 0.3; do
      printf '%s\0' "$COHORT run --overwrite $CFG rounds=$ROUNDS seed=1 server_optimizer.lr=$lr $SGD output.path=$H5/tune_sgd_lr$lr.h5"
    done
  } | run_all
fi
best() {  # best rate of a tuning prefix
  /usr/bin/python3 - "$H5" "$1" <<'PY'
import glob, re, sys, h5py, numpy as np
best, arg = -1, None
for p in glob.glob(f"{sys.argv[1]}/tune_{sys.argv[2]}_lr*.h5"):
    with h5py.File(p, "r") as f:
        a = f["rounds/test_accuracy"][()]
        a = a[~np.isnan(a)]
        acc = a[-1] if f.attrs["status"] == "completed" and len(a) else -1
    if acc > best:
        best, arg = acc, re.search(r"_lr([0-9.]+)\.h5", p).group(1)
print(arg)
PY
}
LR_VOTE=$(best vote)
LR_SGD=$(best sgd)
echo "tuned: majority vote lr $LR_VOTE, SGD lr $LR_SGD"
if [ -z "${TABLE_ONLY:-}" ]; then
  for s in $SEEDS; do
    for k in 0 1 2 3; do
      if [ "$k" = 0 ]; then A="attack={name: none}"; A10=$A; else
        A="attack={name: signflip, count: $k, scale: 1}"; A10="attack={name: signflip, count: $k, scale: 10}"; fi
      printf '%s\0' "$COHORT run --overwrite $CFG rounds=$ROUNDS seed=$s server_optimizer.lr=$LR_VOTE $VOTE '$A' output.path=$H5/vote_k${k}_s$s.h5"
      printf '%s\0' "$COHORT run --overwrite $CFG rounds=$ROUNDS seed=$s server_optimizer.lr=$LR_SGD $SGD '$A' output.path=$H5/sgd_k${k}_s$s.h5"
      [ "$k" = 0 ] || printf '%s\0' "$COHORT run --overwrite $CFG rounds=$ROUNDS seed=$s server_optimizer.lr=$LR_SGD $SGD '$A10' output.path=$H5/sgd10_k${k}_s$s.h5"
    done
  done | run_all
fi
/usr/bin/python3 scripts/repro_signsgd_vote_report.py "$H5" "$OUT" "$MODE" "$LR_VOTE" "$LR_SGD"
