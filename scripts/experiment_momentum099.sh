#!/usr/bin/env bash
# Worker momentum beta = 0.99 in heavy-ball form (m <- 0.99 m + u, x <- x - lr m) with smaller
# server step sizes, against the EMA-form runs of scripts/experiment_byzantine.sh (MODE=full):
# iid data under ALIE (5 attackers) and label-sorted data without attackers, for cm, gm and
# cclip (L = 1; tau = 1 as in the EMA runs, and tau = 100 = 1 / (1 - beta) for the heavy-ball
# messages, which are that much larger), 300 rounds. Heavy-ball at lr equals EMA at lr / (1 - beta) in steady
# state, so lr = 0.001 matches the EMA runs' 0.1 and 0.0003 / 0.003 scale it by 0.3 / 3.
# Writes results/byzantine/momentum099/{table.md,table.csv}; about 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
OUT=results/byzantine/momentum099
mkdir -p "$OUT"
CFG=configs/byzantine/base.yaml
datas=("iid_alie|data.partition.name=iid attack.name=alie attack.count=5"
       "noniid_none|data.partition.name=shards data.partition.shards_per_client=2")
aggs=("cm|aggregator.name=cm" "gm|aggregator.name=gm aggregator.iters=8"
      "cclip|aggregator.name=cclip aggregator.tau=1 aggregator.iters=1"
      "cclip100|aggregator.name=cclip aggregator.tau=100 aggregator.iters=1")  # tau / (1 - beta)
jobs=()
for d in "${datas[@]}"; do
  for g in "${aggs[@]}"; do
    for lr in 0.0003 0.001 0.003; do
      name="${d%%|*}_${g%%|*}_hb_lr$lr"
      read -r -a ov <<< "${d#*|} ${g#*|}"
      jobs+=("$name|${ov[*]} algorithm.client_momentum=0.99 algorithm.momentum_form=heavy_ball server_optimizer.lr=$lr")
    done
  done
done
run_one() {
  local name=${1%%|*} ov
  read -r -a ov <<< "${1#*|}"
  [ -f "$OUT/$name.h5" ] && return 0
  echo "[momentum099] $name"
  "$COHORT" run --overwrite "$CFG" output.path="$OUT/$name.h5" "${ov[@]}" > "$OUT/$name.log" 2>&1 || true
}
for ((i = 0; i < ${#jobs[@]}; i += 2)); do  # two runs at a time (one per core)
  run_one "${jobs[i]}" &
  [ $((i + 1)) -lt ${#jobs[@]} ] && run_one "${jobs[i + 1]}"
  wait
done
/usr/bin/python3 - "$OUT" <<'PY'
import csv, glob, os, sys
import h5py, numpy as np
out = sys.argv[1]
ema = {}
for r in csv.DictReader(open("results/byzantine/table.csv")):
    if r["beta"] in ("0.9", "0.99") and r["bucketing"] == "1":
        ema[(r["data"], r["attack"], r["aggregator"], r["beta"])] = r["final_accuracy"]
rows = []
for path in sorted(glob.glob(f"{out}/*.h5")):
    name = os.path.basename(path)[:-3]
    data, attack, agg, _, lr = name.split("_")
    with h5py.File(path, "r") as f:
        acc = f["rounds/test_accuracy"][()]
        acc = acc[~np.isnan(acc)]
        rows.append(dict(data=data, attack=attack, aggregator=agg, lr=lr[2:],
                         final_accuracy=f"{acc[-1]:.4f}" if len(acc) else "nan"))
with open(f"{out}/table.csv", "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
with open(f"{out}/table.md", "w") as t:
    t.write("Final test accuracy (%), worker momentum 0.99 in heavy-ball form at three server "
            "step sizes, beside the EMA-form runs (lr 0.1) at beta 0.9 and 0.99 from "
            "`results/byzantine/table.csv`.\n\n")
    t.write("| data | attack | rule | HB lr 0.0003 | HB lr 0.001 | HB lr 0.003 | EMA beta 0.99 | "
            "EMA beta 0.9 |\n|---|---|---|---|---|---|---|---|\n")
    keys = sorted({(r["data"], r["attack"], r["aggregator"]) for r in rows})
    for k in keys:
        cells = {r["lr"]: r["final_accuracy"] for r in rows if (r["data"], r["attack"], r["aggregator"]) == k}
        pct = lambda v: "" if v in (None, "", "nan") else f"{100 * float(v):.1f}"
        t.write(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(pct(cells.get(lr)) for lr in ("0.0003", "0.001", "0.003"))
                + f" | {pct(ema.get(k + ('0.99',)))} | {pct(ema.get(k + ('0.9',)))} |\n")
print(open(f"{out}/table.md").read())
PY
