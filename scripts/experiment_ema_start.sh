#!/usr/bin/env bash
# What the EMA worker-momentum start moved (docs/algorithms.md §1): m_i now starts at 0, so a
# client's first message is (1 - beta) u_i; it used to start at m_i = u_i. Reruns the iid rows of
# results/byzantine/table.md with EMA worker momentum (beta 0.9 and 0.99, attacks alie and ipm,
# every aggregator, no bucketing) and writes results/byzantine/ema_start.md beside the old values
# from results/byzantine/table.csv. About 25 minutes on 2 cores (NP=1 runs, JOBS=2 at once).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
JOBS=${JOBS:-2}
OUT=results/byzantine/ema_start
mkdir -p "$OUT"
CFG=configs/byzantine/base.yaml
attacks=("alie|attack.name=alie attack.count=5" "ipm|attack.name=ipm attack.count=11 attack.eps=0.1")
aggs=("mean|aggregator.name=mean" "cm|aggregator.name=cm" "tm|aggregator.name=tm aggregator.b=5"
      "krum|aggregator.name=krum aggregator.f=5" "gm|aggregator.name=gm aggregator.iters=8"
      "cclip|aggregator.name=cclip aggregator.tau=1 aggregator.iters=1")
jobs=()
for a in "${attacks[@]}"; do
  for g in "${aggs[@]}"; do
    for beta in 0.9 0.99; do
      jobs+=("iid_${a%%|*}_${g%%|*}_b${beta}_s1|data.partition.name=iid ${a#*|} ${g#*|} algorithm.client_momentum=$beta")
    done
  done
done
for j in "${jobs[@]}"; do
  name=${j%%|*}
  read -r -a ov <<< "${j#*|}"
  [ -f "$OUT/$name.h5" ] && /usr/bin/python3 -c "import h5py,sys; sys.exit(h5py.File(sys.argv[1],'r').attrs['status']!='completed')" "$OUT/$name.h5" 2>/dev/null && continue
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  echo "[ema_start] $name"
  "$COHORT" run --overwrite "$CFG" output.path="$OUT/$name.h5" "${ov[@]}" > "$OUT/$name.log" 2>&1 &
done
wait || true
/usr/bin/python3 - "$OUT" <<'PY'
import csv, sys, h5py, numpy as np
out = sys.argv[1]
old = {}
for r in csv.DictReader(open("results/byzantine/table.csv")):
    old[(r["data"], r["attack"], r["aggregator"], r["beta"], r["bucketing"])] = r
aggs = ["mean", "cm", "tm", "krum", "gm", "cclip"]
lines = ["# EMA worker momentum: m_i = 0 at the start instead of m_i = u_i", "",
         "Final test accuracy (%) after 300 rounds, iid Fashion-MNIST, 25 clients, no bucketing "
         "(configs/byzantine/base.yaml). Each cell: before -> after the fix (m_i = u_i at a client's "
         "first participation -> m_i = 0, so the first message is (1 - beta) u_i). "
         "Regenerate with `bash scripts/experiment_ema_start.sh`.", "",
         "| attack | beta | " + " | ".join(aggs) + " |", "|---|---|" + "---|" * len(aggs)]
for attack in ("alie", "ipm"):
    for beta in ("0.9", "0.99"):
        cells = []
        for g in aggs:
            o = old.get(("iid", attack, g, beta, "1"))
            before = f"{100 * float(o['final_accuracy']):.1f}" if o and o["status"] == "completed" else (o["status"] if o else "?")
            try:
                with h5py.File(f"{out}/iid_{attack}_{g}_b{beta}_s1.h5", "r") as f:
                    acc = f["rounds/test_accuracy"][()]
                    acc = acc[~np.isnan(acc)]
                    after = f"{100 * acc[-1]:.1f}" if f.attrs["status"] == "completed" and len(acc) else str(f.attrs["status"])
            except OSError:
                after = "missing"
            cells.append(f"{before} -> {after}")
        lines.append(f"| {attack} | {beta} | " + " | ".join(cells) + " |")
open("results/byzantine/ema_start.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
