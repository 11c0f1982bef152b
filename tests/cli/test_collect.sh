#!/bin/bash
# scripts/collect.py on a local sweep: --target ACC's rounds_to_target and bits_to_target against
# the runs' own accuracy rows (the first evaluated round at or above ACC; NaN for a run that never
# gets there); without --target the columns are absent; a bad --target is a usage error (exit 2).
# Env (set by CTest): COHORT, PYTHON, SRC.
set -euo pipefail
: "${COHORT:?}" "${PYTHON:?}" "${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$TMP/base.yaml" <<EOF
seed: 4
rounds: 12
data: {name: synthetic_fedprox, alpha: 0.5, beta: 0.5, dim: 20, classes: 5, min_samples: 20}
model: {name: logreg}
clients: {num_clients: 10, per_round: 5}
algorithm: {name: fedavg, local_steps: 3, batch_size: 8, local_lr: 0.1}
eval: {every: 1}
output: {progress_every: 0}
EOF
cat >"$TMP/sweep.yaml" <<EOF
base: $TMP/base.yaml
grid:
  algorithm.local_lr: [0.01, 0.3]
np: 1
EOF
"$COHORT" sweep "$TMP/sweep.yaml" --out "$TMP/sw" --launcher local >"$TMP/sweep.txt" 2>&1 \
  || { cat "$TMP/sweep.txt" >&2; fail "cohort sweep failed"; }
"$PYTHON" "$SRC/scripts/collect.py" "$TMP/sw" --target 0.3 >"$TMP/collect.txt" 2>&1 \
  || { cat "$TMP/collect.txt" >&2; fail "collect.py --target failed"; }
"$PYTHON" - "$TMP/sw" 0.3 <<'PY' || fail "rounds_to_target is wrong: $(cat "$TMP/collect.txt")"
import csv, glob, math, sys, h5py
from pathlib import Path
sweep, target = Path(sys.argv[1]), float(sys.argv[2])
rows = list(csv.DictReader(open(sweep / "summary.csv")))
assert len(rows) == 2, rows
reached = 0
for r in rows:
    files = glob.glob(str(sweep / "runs" / r["run_id"] / "*.h5"))
    assert len(files) == 1, files
    with h5py.File(files[0], "r") as f:
        acc = f["rounds/test_accuracy"][()]
        rnd = f["rounds/round"][()]
        bits = f["rounds/uplink_bits"][()]
    hits = [i for i, a in enumerate(acc) if not math.isnan(a) and a >= target]
    got, got_bits = float(r["rounds_to_target"]), float(r["bits_to_target"])
    if hits:
        reached += 1
        want, want_bits = float(rnd[hits[0]]), float(bits[: hits[0] + 1].sum())
        assert got == want and got_bits == want_bits, (r, want, want_bits)
    else:
        assert math.isnan(got) and math.isnan(got_bits), r
assert reached >= 1, "no run reached the target: the check would be vacuous"
print(f"collect: rounds_to_target checked for {len(rows)} runs ({reached} reached {target})")
PY
# A target no run reaches: NaN.
"$PYTHON" "$SRC/scripts/collect.py" "$TMP/sw" --target 1.0 >/dev/null 2>&1 || fail "collect.py --target 1.0 failed"
"$PYTHON" - "$TMP/sw/summary.csv" <<'PY' || fail "--target 1.0 should leave rounds_to_target NaN"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sys.exit(0 if rows and all(math.isnan(float(r["rounds_to_target"])) for r in rows) else 1)
PY
# Without --target the columns are absent; a bad target is a usage error.
"$PYTHON" "$SRC/scripts/collect.py" "$TMP/sw" >/dev/null 2>&1 || fail "collect.py failed"
if head -1 "$TMP/sw/summary.csv" | grep -q rounds_to_target; then fail "rounds_to_target without --target"; fi
for bad in 0 1.5 x; do
  rc=0
  "$PYTHON" "$SRC/scripts/collect.py" "$TMP/sw" --target "$bad" >/dev/null 2>"$TMP/err" || rc=$?
  [[ $rc -eq 2 ]] || fail "--target $bad: exit $rc, expected 2"
  grep -q "accuracy in (0, 1\]" "$TMP/err" || fail "--target $bad: no clear message"
done
echo "collect: all checks passed"
