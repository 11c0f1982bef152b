#!/usr/bin/env bash
# `cohort compress` applies a configured compressor to user-supplied vectors: decoded rows and
# encoded sizes are checked against the definitions (docs/algorithms.md §2).
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
tmp = sys.argv[1]
rng = np.random.default_rng(0)
with h5py.File(f"{tmp}/in.h5", "w") as f:
    f["vectors"] = rng.standard_normal((6, 1000)).astype(np.float32)
    f["matrices"] = (rng.standard_normal((3, 12, 2)) @ rng.standard_normal((3, 2, 9))).astype(np.float32)
PY
printf 'compressor: {name: topk, k: 10}\n' > "$TMP/topk.yaml"
printf 'compressor: {name: sign, scale: l1, error_feedback: true}\n' > "$TMP/efsign.yaml"
printf 'compressor: {name: powersgd, rank: 2, mode: per_client}\n' > "$TMP/psgd.yaml"

"$COHORT" compress --config "$TMP/topk.yaml" --input "$TMP/in.h5" --output "$TMP/topk.h5" | tee "$TMP/log"
grep -q "6 x 1000 values (topk)" "$TMP/log"
"$COHORT" compress --config "$TMP/efsign.yaml" --input "$TMP/in.h5" --output "$TMP/ef.h5" > /dev/null
"$COHORT" compress --config "$TMP/psgd.yaml" --input "$TMP/in.h5" --dataset matrices \
  --output "$TMP/psgd.h5" > /dev/null

"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
tmp = sys.argv[1]
with h5py.File(f"{tmp}/in.h5", "r") as f:
    v, m = f["vectors"][()], f["matrices"][()]
with h5py.File(f"{tmp}/topk.h5", "r") as f:
    dec, bits = f["decoded"][()], f["bits"][()]
for i in range(len(v)):
    keep = np.argsort(-np.abs(v[i]), kind="stable")[:10]
    expect = np.zeros_like(v[i]); expect[keep] = v[i][keep]
    assert np.array_equal(dec[i], expect), i
assert (bits == 10 * (32 + 10)).all(), bits  # ceil(log2 1000) = 10 index bits
with h5py.File(f"{tmp}/ef.h5", "r") as f:
    dec, e, bits = f["decoded"][()], f["error_memory"][()][0], f["bits"][()]
# rows are successive messages of one client: sum sent + memory = sum messages
assert np.allclose(dec.sum(0) + e, v.sum(0), atol=1e-4), np.abs(dec.sum(0) + e - v.sum(0)).max()
assert (bits == 1000 + 32).all()
with h5py.File(f"{tmp}/psgd.h5", "r") as f:
    dec, bits = f["decoded"][()], f["bits"][()]
# each 12 x 9 matrix has rank 2: rank-2 PowerSGD reconstructs it
assert np.allclose(dec, m, atol=1e-4 * np.abs(m).max()), np.abs(dec - m).max()
assert (bits == 32 * 2 * (12 + 9)).all(), bits
print("cohort compress: topk, EF-sign and PowerSGD outputs match the definitions")
PY

# Bad input: a usage error (exit 2) that names the problem.
set +e
msg=$("$COHORT" compress --config "$TMP/topk.yaml" --input "$TMP/in.h5" --dataset nope --output "$TMP/x.h5" 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "has no dataset 'nope'" <<< "$msg"
msg=$("$COHORT" compress --config "$TMP/topk.yaml" --input "$TMP/missing.h5" --output "$TMP/x.h5" 2>&1) && exit 1
grep -q "does not exist" <<< "$msg"
echo "compress command: all checks passed"
