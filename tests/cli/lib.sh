# Shared by the end-to-end run tests (sourced, not a test itself): a temporary directory removed on
# exit, the mpiexec command line, and helpers to run one config at several rank counts.
: "${COHORT:?} ${MPIEXEC:?} ${PYTHON:?} ${SRC:?} ${CFG:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MPI=("$MPIEXEC" --oversubscribe --allow-run-as-root)

# run NAME NP OVERRIDES...: `cohort run $CFG` on NP ranks into $TMP/NAME.npNP.h5 (log beside it).
run() {
  local name=$1 np=$2
  shift 2
  "${MPI[@]}" -n "$np" "$COHORT" run "$CFG" output.path="$TMP/$name.np$np.h5" \
    output.progress_every=0 "$@" > "$TMP/$name.np$np.log"
}

# cmp [--ignore-config] A.h5 B.h5: bitwise-identical runs (tests/compare_runs.py).
cmp() { "$PYTHON" "$SRC/tests/compare_runs.py" "$@" > /dev/null; }

# same_at_1_2_4 NAME OVERRIDES...: the case at 1, 2 and 4 ranks gives identical files.
same_at_1_2_4() {
  local name=$1
  shift
  for np in 1 2 4; do run "$name" $np "$@"; done
  cmp "$TMP/$name.np1.h5" "$TMP/$name.np2.h5"
  cmp "$TMP/$name.np1.h5" "$TMP/$name.np4.h5"
}

# expect_usage NAME EXPECTED CMD...: CMD exits exactly 2 (a usage error, not 1 and not a signal)
# with one "cohort: error:" line on stderr that contains EXPECTED; output kept in $TMP/NAME.*.
# A failure is printed and counted in $failures; the caller exits non-zero when it is not 0.
failures=0
expect_usage() {
  local name=$1 want=$2 rc=0 lines
  shift 2
  timeout 120 "$@" > "$TMP/$name.out" 2> "$TMP/$name.err" || rc=$?
  lines=$(grep -c '^cohort: error: ' "$TMP/$name.err" || true)
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$want" "$TMP/$name.err"; then
    echo "FAIL $name: exit $rc (expected 2), $lines error line(s) (expected 1), wanted '$want';" \
      "stderr: $(head -c 600 "$TMP/$name.err" | tr '\n' ' ')"
    failures=$((failures + 1))
  fi
}
