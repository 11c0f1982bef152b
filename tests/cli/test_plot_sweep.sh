#!/bin/bash
# scripts/plot.py --sweep end to end: a 2 x 2 sweep (local_steps 1 and 10, two seeds) of the
# two-client quadratic run locally, plotted as one mean +- std curve per local_steps value;
# then --where, a skipped (missing) run, and the error paths. Env (set by CTest): COHORT,
# PYTHON, SRC.
set -euo pipefail
: "${COHORT:?}" "${PYTHON:?}" "${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
PLOT=("$PYTHON" "$SRC/scripts/plot.py")
is_png() { [[ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]]; }

cat >"$TMP/sweep.yaml" <<EOF
base: $SRC/configs/quadratic_drift.yaml
overrides:
  rounds: 30
  output.progress_every: 0
grid:
  algorithm.local_steps: [1, 10]
seeds: 2
np: 1
EOF
"$COHORT" sweep "$TMP/sweep.yaml" --out "$TMP/sw" --launcher local >"$TMP/sweep.txt" 2>&1 \
  || { cat "$TMP/sweep.txt" >&2; fail "cohort sweep failed"; }
[[ -f "$TMP/sw/manifest.csv" ]] || fail "cohort sweep wrote no manifest.csv"

rc=0
"${PLOT[@]}" --sweep "$TMP/sw" --group-by algorithm.local_steps --metric dist_to_opt \
  -o "$TMP/g.png" >"$TMP/out.txt" 2>"$TMP/err.txt" || rc=$?
cat "$TMP/out.txt"
[[ $rc -eq 0 ]] || { cat "$TMP/err.txt" >&2; fail "plot.py --sweep exited $rc"; }
[[ -f "$TMP/g.png" ]] || fail "no PNG written"
is_png "$TMP/g.png" || fail "g.png lacks the PNG signature"
size=$(stat -c %s "$TMP/g.png")
[[ $size -gt 10240 ]] || fail "g.png is only $size bytes"
[[ $(grep -c '^algorithm.local_steps=.*: 2 runs' "$TMP/out.txt") -eq 2 ]] \
  || fail "expected 2 summary lines with '2 runs'"
grep -q '^algorithm.local_steps=1: 2 runs, final dist_to_opt' "$TMP/out.txt" \
  || fail "summary lacks local_steps=1"
grep -q '^algorithm.local_steps=10: 2 runs, final dist_to_opt' "$TMP/out.txt" \
  || fail "summary lacks local_steps=10"
# Numeric order: 1 before 10. K = 1 reaches the optimum, K = 10 stops short (client drift).
[[ "$(grep -o '^algorithm.local_steps=[0-9]*' "$TMP/out.txt" | tr '\n' ' ')" == \
   "algorithm.local_steps=1 algorithm.local_steps=10 " ]] || fail "groups not in numeric order"
final() { sed -n "s/^algorithm.local_steps=$1: .* = \([^ ]*\) .*/\1/p" "$TMP/out.txt"; }
awk -v a="$(final 1)" -v b="$(final 10)" 'BEGIN { exit !(a < 1e-3 && b > 0.1) }' \
  || fail "final dist_to_opt: K=1 $(final 1), K=10 $(final 10); expected < 1e-3 and > 0.1"
! grep -q 'also spans' "$TMP/err.txt" || fail "spurious 'also spans' warning: $(cat "$TMP/err.txt")"

# --x bits and --where; a run whose results file is gone is skipped with a warning naming it.
rm "$TMP/sw/runs/r003_local_steps-10_seed-1/metrics.h5"
rc=0
"${PLOT[@]}" --sweep "$TMP/sw" --group-by seed --where algorithm.local_steps=10 --x bits \
  --metric train_loss -o "$TMP/w.png" >"$TMP/out.txt" 2>"$TMP/err.txt" || rc=$?
[[ $rc -eq 0 ]] || { cat "$TMP/err.txt" >&2; fail "plot.py --where exited $rc"; }
is_png "$TMP/w.png" || fail "w.png lacks the PNG signature"
grep -q r003_local_steps-10_seed-1 "$TMP/err.txt" || fail "missing run not named: $(cat "$TMP/err.txt")"
[[ "$(grep -c '^seed=' "$TMP/out.txt")" -eq 1 ]] && grep -q '^seed=0: 1 run,' "$TMP/out.txt" \
  || fail "--where local_steps=10 without r003 should leave seed=0 only: $(cat "$TMP/out.txt")"

# Errors exit 2 and write no image: unknown --group-by (the swept keys are listed), a --where
# that selects nothing, and a directory without manifest.
rc=0
"${PLOT[@]}" --sweep "$TMP/sw" --group-by algorithm.local_epochs -o "$TMP/x.png" \
  2>"$TMP/err.txt" || rc=$?
[[ $rc -eq 2 ]] || fail "unknown --group-by: exit $rc, expected 2"
grep -q 'algorithm.local_steps' "$TMP/err.txt" && grep -q seed "$TMP/err.txt" \
  || fail "unknown --group-by does not list the swept keys: $(cat "$TMP/err.txt")"

rc=0
"${PLOT[@]}" --sweep "$TMP/sw" --group-by seed --where algorithm.local_steps=5 -o "$TMP/x.png" \
  2>"$TMP/err.txt" || rc=$?
[[ $rc -eq 2 ]] || fail "empty selection: exit $rc, expected 2"

rc=0
"${PLOT[@]}" --sweep "$TMP" --group-by seed -o "$TMP/x.png" 2>"$TMP/err.txt" || rc=$?
[[ $rc -eq 2 ]] || fail "no manifest: exit $rc, expected 2"
grep -q manifest.csv "$TMP/err.txt" || fail "no manifest: message lacks manifest.csv"
[[ ! -e "$TMP/x.png" ]] || fail "x.png written despite the errors"
echo "PASS"
