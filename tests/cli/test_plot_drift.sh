#!/bin/bash
# scripts/plot_drift.py end to end: the two figure-2 configs (data.record_x) run for 12 rounds
# and drawn together; the recorded path ends where the final model is; then the error paths (a
# run without record_x, a 1-D run) exit 2 naming the file. Env (set by CTest): COHORT, PYTHON, SRC.
set -euo pipefail
: "${COHORT:?}" "${PYTHON:?}" "${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for alg in fedavgm mime; do
  "$COHORT" run "$SRC/configs/figure2_$alg.yaml" output.path="$TMP/$alg.h5" rounds=12 >/dev/null
done
rc=0
"$PYTHON" "$SRC/scripts/plot_drift.py" "$TMP/fedavgm.h5" "$TMP/mime.h5" --labels "A,B" \
  -o "$TMP/f.png" >"$TMP/out.txt" 2>"$TMP/err.txt" || rc=$?
cat "$TMP/out.txt"
[[ $rc -eq 0 ]] || { cat "$TMP/err.txt" >&2; fail "plot_drift.py exited $rc"; }
[[ "$(head -c 8 "$TMP/f.png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] \
  || fail "f.png lacks the PNG signature"
grep -q '^A: 12 rounds' "$TMP/out.txt" || fail "summary lacks run A"
grep -q '^B: 12 rounds' "$TMP/out.txt" || fail "summary lacks run B"
grep -q '^x\* = (1.08333, 0.75), average of client optima = (0.25, 0.25)' "$TMP/out.txt" \
  || fail "wrong optimum or average"

# /rounds/x_0, x_1 of the last round are the final model's coordinates, and every round has them.
"$PYTHON" - "$TMP/mime.h5" <<'PY' || fail "recorded x does not match the model"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    r = f["rounds"]
    x = np.stack([r["x_0"][()], r["x_1"][()]], axis=1)
    assert x.shape == (12, 2) and np.isfinite(x).all(), x
    model = np.asarray(f["model/x"][()], dtype=float).ravel()
    assert np.array_equal(x[-1], model), (x[-1], model)
    opt = np.array([13 / 12, 0.75])
    assert np.allclose(r["dist_to_opt"][()], np.linalg.norm(x - opt, axis=1), rtol=1e-6)
PY

# A run without record_x, and a 1-D run: exit 2, naming the file and the reason.
"$COHORT" run "$SRC/configs/figure2_mime.yaml" data.record_x=false output.path="$TMP/nox.h5" \
  rounds=2 >/dev/null
"$COHORT" run "$SRC/configs/quadratic_drift.yaml" output.path="$TMP/oned.h5" rounds=2 >/dev/null
for bad in nox oned; do
  rc=0
  "$PYTHON" "$SRC/scripts/plot_drift.py" "$TMP/$bad.h5" -o "$TMP/x.png" 2>"$TMP/err.txt" || rc=$?
  [[ $rc -eq 2 ]] || fail "$bad: exit $rc, expected 2"
  grep -q "$bad.h5" "$TMP/err.txt" || fail "$bad: file not named: $(cat "$TMP/err.txt")"
  [[ ! -e "$TMP/x.png" ]] || fail "$bad: x.png written despite the error"
done
grep -q "dim = 2" "$TMP/err.txt" || fail "1-D run: reason not given: $(cat "$TMP/err.txt")"
echo "plot_drift: OK"
