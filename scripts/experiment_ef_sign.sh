#!/usr/bin/env bash
# Experiment (a): signSGD vs EF-signSGD vs SGD on the two-point least-squares counterexample.
# Writes results/ef_sign/{table.md, loss.png}; about 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
OUT=results/ef_sign
mkdir -p "$OUT"
CFG=configs/compression/ef_sign.yaml
"$COHORT" run --overwrite $CFG output.path=$OUT/sign.h5 compressor.name=sign output.progress_every=0
"$COHORT" run --overwrite $CFG output.path=$OUT/ef_sign.h5 compressor.name=sign compressor.scale=l1 \
  compressor.error_feedback=true output.progress_every=0
"$COHORT" run --overwrite $CFG output.path=$OUT/sgd.h5 output.progress_every=0
/usr/bin/python3 scripts/plot.py $OUT/sign.h5 $OUT/ef_sign.h5 $OUT/sgd.h5 \
  --labels signSGD,EF-signSGD,SGD -o $OUT/loss.png --title "EF fixes sign (x0 = (1,1))"
/usr/bin/python3 - "$OUT" <<'PY'
import sys, h5py, numpy as np
out = sys.argv[1]
rows = []
for name, label in [("sign", "signSGD"), ("ef_sign", "EF-signSGD"), ("sgd", "SGD")]:
    with h5py.File(f"{out}/{name}.h5", "r") as f:
        w = f["model/w"][()].ravel()
        loss = f["rounds/test_loss"][()]
        loss = loss[~np.isnan(loss)]
        bits = f["rounds/uplink_bits"][()].sum()
        rows.append((label, w[0], w[1], w[0] + w[1], np.linalg.norm(w), loss[-1], bits))
with open(f"{out}/table.md", "w") as t:
    t.write("# Error feedback fixes sign (configs/compression/ef_sign.yaml)\n\n")
    t.write("Command: `scripts/experiment_ef_sign.sh` (2000 rounds, lr 0.01, one of the two terms per round).\n\n")
    t.write("| method | x1 | x2 | x1 + x2 | ‖x‖ | final loss | uplink bits |\n|---|---|---|---|---|---|---|\n")
    for r in rows:
        t.write(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.3g} | {r[6]:.0f} |\n")
print(open(f"{out}/table.md").read())
PY
