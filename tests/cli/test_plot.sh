#!/bin/bash
# scripts/plot.py end to end: two short quadratic runs (K = 10 and K = 1 local steps) plotted
# together, then the error paths. Env (set by CTest): COHORT, PYTHON, SRC.
set -euo pipefail
: "${COHORT:?}" "${PYTHON:?}" "${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$COHORT" run "$SRC/configs/quadratic_drift.yaml" output.path="$TMP/a/metrics.h5" rounds=40 \
  output.progress_every=0 >/dev/null
"$COHORT" run "$SRC/configs/quadratic_drift.yaml" algorithm.local_steps=1 \
  output.path="$TMP/b/metrics.h5" rounds=40 output.progress_every=0 >/dev/null

rc=0
"$PYTHON" "$SRC/scripts/plot.py" "$TMP/a/metrics.h5" "$TMP/b/metrics.h5" -o "$TMP/p.png" \
  >"$TMP/out.txt" 2>"$TMP/err.txt" || rc=$?
cat "$TMP/out.txt"
[[ $rc -eq 0 ]] || { cat "$TMP/err.txt" >&2; fail "plot.py exited $rc"; }
[[ -f "$TMP/p.png" ]] || fail "no PNG written"
[[ "$(head -c 8 "$TMP/p.png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] \
  || fail "p.png lacks the PNG signature"
size=$(stat -c %s "$TMP/p.png")
[[ $size -gt 10240 ]] || fail "p.png is only $size bytes"
grep -q '^a: status=completed' "$TMP/out.txt" || fail "summary lacks run a"
grep -q '^b: status=completed' "$TMP/out.txt" || fail "summary lacks run b"

# Errors: a missing file, a file that is not HDF5, and a usage error all exit 2.
rc=0
"$PYTHON" "$SRC/scripts/plot.py" /nonexistent.h5 -o "$TMP/x.png" 2>"$TMP/err.txt" || rc=$?
[[ $rc -eq 2 ]] || fail "missing file: exit $rc, expected 2"
grep -q /nonexistent.h5 "$TMP/err.txt" || fail "missing file not named: $(cat "$TMP/err.txt")"
[[ ! -e "$TMP/x.png" ]] || fail "x.png written despite the error"

echo "not hdf5" >"$TMP/bogus.h5"
rc=0
"$PYTHON" "$SRC/scripts/plot.py" "$TMP/bogus.h5" -o "$TMP/x.png" 2>"$TMP/err.txt" || rc=$?
[[ $rc -eq 2 ]] || fail "non-HDF5 file: exit $rc, expected 2"
grep -q bogus.h5 "$TMP/err.txt" || fail "non-HDF5 file not named: $(cat "$TMP/err.txt")"

rc=0
"$PYTHON" "$SRC/scripts/plot.py" "$TMP/a/metrics.h5" --labels x,y -o "$TMP/x.png" 2>/dev/null \
  || rc=$?
[[ $rc -eq 2 ]] || fail "label count mismatch: exit $rc, expected 2"
echo "PASS"
