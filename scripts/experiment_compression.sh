#!/usr/bin/env bash
# Experiment (b): accuracy vs uplink bits for every compressor on Fashion-MNIST (MLP, 8 clients,
# distributed SGD with server momentum). Writes results/compression/{table.md, table.csv,
# accuracy_vs_bits.png, powersgd.png}. About 5 minutes on 2 cores (NP ranks, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
NP=${NP:-2}
OUT=results/compression
mkdir -p "$OUT"
CFG=configs/compression/accuracy_vs_bits.yaml

# label|overrides  (sign-type methods use a smaller step: their messages are +-1 per coordinate)
variants=(
  "none|compressor.name=none"
  "sign|compressor.name=sign server_optimizer.lr=0.0005"
  "ef_sign|compressor.name=sign compressor.scale=l1 compressor.error_feedback=true server_optimizer.lr=0.005"
  "majority|compressor.name=sign aggregator.name=majority server_optimizer.lr=0.0005"
  "topk1|compressor.name=topk compressor.ratio=0.01"
  "ef_topk1|compressor.name=topk compressor.ratio=0.01 compressor.error_feedback=true"
  "randk1|compressor.name=randk compressor.ratio=0.01"
  "ef_randk1|compressor.name=randk compressor.ratio=0.01 compressor.error_feedback=true server_optimizer.lr=0.005"
  "qsgd4|compressor.name=qsgd compressor.levels=4"
  "qsgd16|compressor.name=qsgd compressor.levels=16"
  "powersgd_r1|compressor.name=powersgd compressor.rank=1 compressor.error_feedback=true"
  "powersgd_r2|compressor.name=powersgd compressor.rank=2 compressor.error_feedback=true"
  "powersgd_r4|compressor.name=powersgd compressor.rank=4 compressor.error_feedback=true"
  "powersgd_r2_noef|compressor.name=powersgd compressor.rank=2"
  "powersgd_r2_cold|compressor.name=powersgd compressor.rank=2 compressor.error_feedback=true compressor.warm_start=false"
)
labels=()
files=()
for v in "${variants[@]}"; do
  label=${v%%|*}
  read -r -a overrides <<< "${v#*|}"
  echo "[compression] $label: ${overrides[*]}"
  mpirun -np "$NP" "$COHORT" run --overwrite "$CFG" output.path="$OUT/$label.h5" output.progress_every=0 \
    "${overrides[@]}" | tail -1 || true  # a diverged variant is a result, not a failure
  labels+=("$label")
  files+=("$OUT/$label.h5")
done
IFS=, ; label_arg="${labels[*]}"; unset IFS
/usr/bin/python3 scripts/plot.py "${files[@]:0:10}" --labels "$(IFS=,; echo "${labels[*]:0:10}")" \
  -o "$OUT/accuracy_vs_bits.png" --title "Fashion-MNIST MLP, 8 clients: accuracy vs uplink bits"
/usr/bin/python3 scripts/plot.py "$OUT/none.h5" "${files[@]:10}" \
  --labels "none,$(IFS=,; echo "${labels[*]:10}")" -o "$OUT/powersgd.png" \
  --title "PowerSGD: rank, error feedback, warm start"
/usr/bin/python3 - "$OUT" "$label_arg" <<'PY'
import sys, h5py, numpy as np
out, labels = sys.argv[1], sys.argv[2].split(",")
rows = []
for label in labels:
    with h5py.File(f"{out}/{label}.h5", "r") as f:
        acc = f["rounds/test_accuracy"][()]
        ev = acc[~np.isnan(acc)]
        up = f["rounds/uplink_bits"][()]
        d = int(f.attrs["num_params"])
        per_msg = up[0] / 8 if len(up) else 0  # 8 clients per round
        rows.append(dict(method=label, status=f.attrs["status"], final_acc=ev[-1] if len(ev) else float("nan"),
                         best_acc=ev.max() if len(ev) else float("nan"), bits_per_coord=per_msg / d,
                         total_gbit=up.sum() / 1e9, ratio=32 * d / per_msg if per_msg else float("nan")))
with open(f"{out}/table.csv", "w") as c:
    c.write("method,status,final_accuracy,best_accuracy,bits_per_coordinate,compression_ratio,total_uplink_gbit\n")
    for r in rows:
        c.write(f"{r['method']},{r['status']},{r['final_acc']:.4f},{r['best_acc']:.4f},{r['bits_per_coord']:.4f},{r['ratio']:.1f},{r['total_gbit']:.4f}\n")
with open(f"{out}/table.md", "w") as t:
    t.write("| method | status | final acc | best acc | bits/coord | ratio vs float32 | total uplink Gbit |\n|---|---|---|---|---|---|---|\n")
    for r in rows:
        t.write(f"| {r['method']} | {r['status']} | {100*r['final_acc']:.2f}% | {100*r['best_acc']:.2f}% | {r['bits_per_coord']:.4f} | {r['ratio']:.1f}x | {r['total_gbit']:.3f} |\n")
print(open(f"{out}/table.md").read())
PY
