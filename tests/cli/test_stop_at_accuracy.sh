#!/bin/bash
# eval.stop_at_accuracy: the run ends after the first *evaluated* round whose test accuracy is at
# least the target, with status completed, attributes target_round (= rounds_done) and
# stop_at_accuracy, and every row it wrote bitwise equal to the same rows of the run that never
# stops; the stop is the same at 1 and 2 ranks (bitwise); a target never reached runs every round
# and records target_round = -1; a problem without accuracy, or a target outside [0, 1], is a
# usage error (exit 2), as are a negative, huge, non-numeric or list value.
# Env (set by CTest): COHORT, MPIEXEC, PYTHON, SRC.
set -euo pipefail
: "${COHORT:?}" "${MPIEXEC:?}" "${PYTHON:?}" "${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
MPI=("$MPIEXEC" -n 2 --oversubscribe --allow-run-as-root)

cat >"$TMP/base.yaml" <<EOF
seed: 4
rounds: 30
data: {name: synthetic_fedprox, alpha: 0.5, beta: 0.5, dim: 20, classes: 5, min_samples: 20}
model: {name: logreg}
clients: {num_clients: 10, per_round: 5}
algorithm: {name: fedavg, local_steps: 3, batch_size: 8, local_lr: 0.05}
eval: {every: 1}
output: {progress_every: 0}
EOF
run() {  # run OUT [overrides...]: one rank
  local out=$1; shift
  "$COHORT" run "$TMP/base.yaml" output.path="$TMP/$out.h5" "$@" >"$TMP/$out.txt" 2>&1 \
    || { cat "$TMP/$out.txt" >&2; fail "run $out failed"; }
}
run full
# Targets from the full run: the accuracy first reached at a round k >= 3 that is a new running
# maximum (every earlier round below it), for evaluation every round and every third round.
read -r T1 K1 T3 K3 < <("$PYTHON" - "$TMP/full.h5" <<'PY'
import sys, h5py, numpy as np
acc = h5py.File(sys.argv[1], "r")["rounds/test_accuracy"][()]
def pick(every):
    rounds = np.arange(1, len(acc) + 1)
    ev = [(r, acc[r - 1]) for r in rounds if r % every == 0]
    best = -1.0
    for r, a in ev:
        if a > best and r >= 3 and best >= 0 and r < len(acc):
            return a, r
        best = max(best, a)
    sys.exit(f"no new running maximum after round 3 with every = {every}: {acc}")
a1, k1 = pick(1)
a3, k3 = pick(3)
print(repr(float(a1)), k1, repr(float(a3)), k3)
PY
)
[[ -n "$K1" ]] || fail "could not pick a target"
run stop1 eval.stop_at_accuracy="$T1"
"${MPI[@]}" "$COHORT" run "$TMP/base.yaml" output.path="$TMP/stop2.h5" eval.stop_at_accuracy="$T1" \
  >"$TMP/stop2.txt" 2>&1 || { cat "$TMP/stop2.txt" >&2; fail "2-rank run failed"; }
grep -q "target accuracy reached" "$TMP/stop1.txt" || fail "no 'target accuracy reached' line: $(cat "$TMP/stop1.txt")"
run stop3 eval.stop_at_accuracy="$T3" eval.every=3
run full3 eval.every=3
run never eval.stop_at_accuracy=1
"$PYTHON" "$SRC/tests/compare_runs.py" "$TMP/stop1.h5" "$TMP/stop2.h5" >"$TMP/cmp.txt" 2>&1 \
  || { cat "$TMP/cmp.txt" >&2; fail "the stop differs between 1 and 2 ranks"; }
"$PYTHON" - "$TMP" "$K1" "$T1" "$K3" "$T3" <<'PY' || fail "stop_at_accuracy rows or attributes are wrong"
import sys, h5py, numpy as np
tmp, k1, t1, k3, t3 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
def check(stopped, full, k, target):
    with h5py.File(f"{tmp}/{stopped}.h5", "r") as s, h5py.File(f"{tmp}/{full}.h5", "r") as f:
        a = s.attrs
        assert a["status"] == "completed", a["status"]
        assert int(a["rounds_done"]) == k and int(a["target_round"]) == k, (dict(a), k)
        assert float(a["stop_at_accuracy"]) == target
        msg = str(a["message"])
        assert "reached eval.stop_at_accuracy" in msg and f"after round {k} of 30" in msg, msg
        for name in ("round", "test_accuracy", "test_loss", "train_loss", "uplink_bits"):
            got, want = s["rounds/" + name][()], f["rounds/" + name][()][:k]
            assert len(got) == k, (name, len(got), k)
            assert np.array_equal(got, want, equal_nan=True), (name, got, want)
        acc = s["rounds/test_accuracy"][()]
        assert acc[-1] >= target and not np.any(acc[:-1] >= target), acc
check("stop1", "full", k1, t1)
check("stop3", "full3", k3, t3)
with h5py.File(f"{tmp}/never.h5", "r") as n:
    assert n.attrs["status"] == "completed" and int(n.attrs["rounds_done"]) == 30
    assert int(n.attrs["target_round"]) == -1, dict(n.attrs)
    assert np.nanmax(n["rounds/test_accuracy"][()]) < 1
print(f"stop_at_accuracy: every 1 -> round {k1} (target {t1}), every 3 -> round {k3} (target {t3})")
PY
# Usage errors: no accuracy to reach, or a target outside [0, 1].
rc=0
"$COHORT" run "$TMP/base.yaml" output.path="$TMP/q.h5" "data={name: quadratic, dim: 2}" \
  model.name=auto eval.stop_at_accuracy=0.5 >/dev/null 2>"$TMP/q.err" || rc=$?
[[ $rc -eq 2 ]] || fail "quadratic with stop_at_accuracy: exit $rc, expected 2: $(cat "$TMP/q.err")"
grep -q "eval.stop_at_accuracy stops at a test accuracy: it needs a classification dataset" "$TMP/q.err" \
  || fail "quadratic: unclear message: $(cat "$TMP/q.err")"
for bad in 1.5 -0.1 1e400 x "[0.5]"; do
  rc=0
  "$COHORT" validate "$TMP/base.yaml" "eval.stop_at_accuracy=$bad" >/dev/null 2>"$TMP/r.err" || rc=$?
  [[ $rc -eq 2 ]] || fail "stop_at_accuracy = $bad: exit $rc, expected 2"
  grep -q "eval.stop_at_accuracy = '.*' is not allowed: expected a number in \[0, 1\]" "$TMP/r.err" \
    || fail "$bad: message does not name the key and the range: $(cat "$TMP/r.err")"
done
echo "stop_at_accuracy: all checks passed"
