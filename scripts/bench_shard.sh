#!/usr/bin/env bash
# Shard-plan benchmark: per-rank peak memory and exchange time of configs/bench_shard.yaml
# (64 clients x d = 1,996,805 per round, coordinate-wise median) under the gather and shard plans
# at P = 1, 2, 4 ranks, beside the mean on the reduce plan (what a rank holds besides the round's
# messages: model, data, client work). Also checks that every file equals the gather run at np 1.
# Writes results/bench_shard.md and results/bench_shard.csv. Takes about a minute on 2 cores
# and up to ~10 GB of memory (gather at P = 4).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
OUT=results/bench/shard
mkdir -p "$OUT"
CFG=configs/bench_shard.yaml

run() {  # label np overrides...
  local label=$1 np=$2
  shift 2
  echo "[bench] $label (np $np)"
  mpirun -np "$np" "$COHORT" run --overwrite "$CFG" output.path="$OUT/$label.np$np.h5" \
    output.progress_every=0 "$@" > "$OUT/$label.np$np.log"
}
if [ "${TABLE_ONLY:-0}" != 1 ]; then  # TABLE_ONLY=1: tabulate the runs already in $OUT
for np in 1 2 4; do
  run reduce_mean "$np" aggregator.name=mean
  run gather "$np" comm.plan=gather
  run shard "$np" comm.plan=shard
done
for np in 1 2 4; do
  for plan in gather shard; do
    /usr/bin/python3 tests/compare_runs.py --ignore-config "$OUT/gather.np1.h5" "$OUT/$plan.np$np.h5"
  done
done
fi

/usr/bin/python3 - "$OUT" <<'PY'
import csv, sys
import h5py

out = sys.argv[1]
rows = []
for plan in ["reduce_mean", "gather", "shard"]:
    for np_ in [1, 2, 4]:
        with h5py.File(f"{out}/{plan}.np{np_}.h5", "r") as f:
            n = int(f["rounds/clients"][-1])
            d = int(f.attrs["num_params"])
            rows.append(dict(plan=plan, ranks=np_, clients=n, d=d,
                             message_mib=round(n * d * 4 / 2**20, 1),
                             peak_rss_mib_max=round(float(f.attrs["peak_rss_mib_max"]), 1),
                             exchange_s=round(float(f["rounds/time_comm_max"][-1]), 3)))
base = {r["ranks"]: r["peak_rss_mib_max"] for r in rows if r["plan"] == "reduce_mean"}
for r in rows:
    r["above_reduce_mib"] = round(r["peak_rss_mib_max"] - base[r["ranks"]], 1)
with open("results/bench_shard.csv", "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
with open("results/bench_shard.md", "w") as fh:
    fh.write("# Shard plan: per-rank memory and exchange time\n\n")
    fh.write("Regenerate: `bash scripts/bench_shard.sh` (config `configs/bench_shard.yaml`: "
             f"{rows[0]['clients']} clients per round, d = {rows[0]['d']:,}, one round's "
             f"messages = {rows[0]['message_mib']} MiB; aggregator cm; the second round is "
             "timed). Every gather and shard file is bitwise identical to the gather run at "
             "np 1 (`tests/compare_runs.py`).\n\n")
    fh.write("`peak RSS` is the largest peak resident set of any rank; `above reduce` subtracts "
             "the mean on the reduce plan at the same rank count (model, data and client work), "
             "leaving what the plan itself holds. `exchange` is the slowest rank's time for "
             "the exchange and aggregation of the round.\n\n")
    fh.write("| plan | ranks | peak RSS (MiB) | above reduce (MiB) | in units of n·d·4/P | exchange (s) |\n")
    fh.write("|---|---:|---:|---:|---:|---:|\n")
    for r in rows:
        unit = r["message_mib"] / r["ranks"]
        units = "" if r["plan"] == "reduce_mean" else f"{r['above_reduce_mib'] / unit:.2f}"
        fh.write(f"| {r['plan']} | {r['ranks']} | {r['peak_rss_mib_max']:.0f} | "
                 f"{r['above_reduce_mib']:.0f} | {units} | {r['exchange_s']:.2f} |\n")
print(open("results/bench_shard.md").read())
PY
