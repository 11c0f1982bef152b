#!/usr/bin/env bash
# configs/quickstart.yaml (MLP on Fashion-MNIST, 10 clients, Dirichlet 0.5) under mpirun -np 2
# reaches at least 80% test accuracy and leaves a completed results file.
set -euo pipefail
: "${COHORT:?} ${MPIEXEC:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$MPIEXEC" --oversubscribe --allow-run-as-root -n 2 "$COHORT" run "$SRC/configs/quickstart.yaml" \
  output.path="$TMP/q.h5" | tee "$TMP/log"
grep -q "^round 10/10 " "$TMP/log"
"$PYTHON" - "$TMP/q.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["status"] == "completed", f.attrs["status"]
    acc = f["rounds/test_accuracy"][()]
    n = f["clients/num_samples"][()]
    assert len(acc) == 10, len(acc)
    assert n.sum() == 60000 and len(n) == 10, n
    assert f["rounds/uplink_bits"][0] == 32 * f.attrs["num_params"] * 10
    print(f"final accuracy {acc[-1]:.4f}")
    assert acc[-1] >= 0.80, f"final accuracy {acc[-1]:.4f} < 0.80"
PY
