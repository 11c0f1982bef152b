#!/usr/bin/env bash
# Results files are never clobbered (Note [Results file ownership]): `cohort run` refuses an
# existing results file without --overwrite, never replaces a file that is not a results file
# (with or without it), and refuses a path another run is writing, whatever the rank count,
# without touching that run's file.
set -euo pipefail
CFG="$SRC/configs/quadratic_drift.yaml"
source "$SRC/tests/cli/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }

# expect_refusal WHAT PATTERN CMD...: exit code 2 and PATTERN in the message.
expect_refusal() {
  local what=$1 pattern=$2 rc=0
  shift 2
  "$@" > "$TMP/out.log" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2: $(cat "$TMP/out.log")"
  grep -q -- "$pattern" "$TMP/out.log" || fail "$what: no '$pattern' in: $(cat "$TMP/out.log")"
}
digest() { if [ -d "$1" ]; then ls -la "$1"; else sha256sum < "$1"; fi; }
attr() {  # attr FILE NAME: a root attribute of a results file
  HDF5_USE_FILE_LOCKING=FALSE "$PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs[sys.argv[2]])" "$1" "$2"
}
RUN=("$COHORT" run "$CFG" rounds=3 output.progress_every=0)

# A refused run under mpirun costs ~2.5 s (mpirun's abort delay): one rank count of 2 per case
# class, one process elsewhere.
# 1. Foreign files at output.path, with and without --overwrite.
"$PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1],'w'); f['x']=[1,2]; f.attrs['status']='mine'" "$TMP/data.h5"
"$PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1],'w'); f.attrs['config']='a: 1'" "$TMP/config_only.h5"
printf 'my notes\n' > "$TMP/notes.txt"
foreign=(
  "text|printf 'precious\\n'"
  "binary|head -c 4096 /dev/urandom"
  "empty|true"
  "hdf5 dataset with a status attribute|cat $TMP/data.h5"
  "hdf5 with only a config attribute|cat $TMP/config_only.h5"
  "hdf5 signature then garbage|printf '\\211HDF\\r\\n\\032\\nnot hdf5'"
)
for case in "${foreign[@]}"; do
  name=${case%%|*}
  for flag in "" --overwrite; do
    f="$TMP/foreign.h5"
    rm -rf "$f"
    bash -c "${case#*|}" > "$f"
    before=$(digest "$f")
    want="is not a cohort results file"
    # HDF5's signature but no HDF5 file: reported as damaged (README "Results file ownership").
    [ "$name" != "hdf5 signature then garbage" ] || want="is an HDF5 file that cannot be read"
    expect_refusal "$name $flag" "$want" "${RUN[@]}" $flag output.path="$f"
    [ "$(digest "$f")" = "$before" ] || fail "$name $flag: the file was changed"
    [ ! -e "$f.lock" ] && [ ! -e "$f.partial" ] || fail "$name $flag: lock or partial file left"
  done
done
expect_refusal "text at 2 ranks" "is not a cohort results file" \
  "${MPI[@]}" -n 2 "$COHORT" run --overwrite "$CFG" rounds=3 output.path="$TMP/notes.txt"
[ "$(cat "$TMP/notes.txt")" = "my notes" ] || fail "text at 2 ranks: the file was changed"
mkdir "$TMP/dir.h5"
expect_refusal "a directory" "is not a cohort results file" "${RUN[@]}" output.path="$TMP/dir.h5" --overwrite
ln -s "$TMP/notes.txt" "$TMP/link.h5"
expect_refusal "a link to a text file" "is not a cohort results file" "${RUN[@]}" output.path="$TMP/link.h5" --overwrite
[ "$(cat "$TMP/notes.txt")" = "my notes" ] || fail "the file behind a link was changed"
echo "foreign files: refused and untouched"

# 2. An existing results file: refused without --overwrite (untouched), replaced with it.
R="$TMP/sub/run.h5"
"${RUN[@]}" seed=1 output.path="$R" > /dev/null
[ "$(attr "$R" status)" = completed ] || fail "first run did not complete"
before=$(digest "$R")
expect_refusal "existing results" "already holds the results.*--overwrite" \
  "${RUN[@]}" seed=2 output.path="$R"
expect_refusal "existing results at 2 ranks" "already holds the results.*--overwrite" \
  "${MPI[@]}" -n 2 "$COHORT" run "$CFG" rounds=3 seed=2 output.path="$R"
[ "$(digest "$R")" = "$before" ] || fail "a refused run changed the results file"
"${MPI[@]}" -n 2 "$COHORT" run --overwrite "$CFG" rounds=3 seed=2 output.path="$R" > /dev/null
[ "$(attr "$R" seed)" = 2 ] || fail "--overwrite did not replace the results file"
[ ! -e "$R.lock" ] && [ ! -e "$R.partial" ] || fail "lock or partial file left after a run"
echo "existing results: refused without --overwrite, replaced with it"

# 3. A run in progress: every second writer is refused and its file stays whole.
L="$TMP/long.h5"
"$COHORT" run "$CFG" rounds=100000000 eval.every=0 output.progress_every=0 output.path="$L" \
  > "$TMP/long.log" 2>&1 &
long=$!
for _ in $(seq 200); do [ -e "$L.lock" ] && [ -e "$L" ] && break; sleep 0.05; done
[ -e "$L" ] || fail "the long run did not start: $(cat "$TMP/long.log")"
for flag in "" --overwrite; do
  expect_refusal "in progress $flag" "being written by another cohort process" \
    "${RUN[@]}" $flag output.path="$L"
done
expect_refusal "in progress at 2 ranks" "being written by another cohort process" \
  "${MPI[@]}" -n 2 "$COHORT" run --overwrite "$CFG" rounds=3 output.path="$L"
kill -TERM $long
rc=0
wait $long || rc=$?
[ "$rc" -eq 130 ] || fail "the long run exited $rc after SIGTERM: $(cat "$TMP/long.log")"
HDF5_USE_FILE_LOCKING=FALSE "$PYTHON" - "$L" <<'PY' || fail "the long run's file was damaged"
import h5py, sys
f = h5py.File(sys.argv[1], "r")
done = int(f.attrs["rounds_done"])
assert f.attrs["status"] == "preempted", f.attrs["status"]
assert done > 0 and len(f["rounds/round"]) == done, (done, len(f["rounds/round"]))
PY
[ ! -e "$L.lock" ] || fail "lock file left after the run ended"
echo "run in progress: second writers refused, file intact"
# 4. `cohort compress` and `cohort aggregate` replace their own outputs, never a foreign file
#    (their input included).
"$PYTHON" -c "import h5py,sys,numpy as np; h5py.File(sys.argv[1],'w')['vectors']=np.ones((4,8),np.float32)" "$TMP/in.h5"
printf 'compressor: {name: topk, k: 2}\naggregator: {name: cm}\n' > "$TMP/c.yaml"
for cmd in compress aggregate; do
  "$COHORT" $cmd --config "$TMP/c.yaml" --input "$TMP/in.h5" --output "$TMP/$cmd.h5" > /dev/null
  "$COHORT" $cmd --config "$TMP/c.yaml" --input "$TMP/in.h5" --output "$TMP/$cmd.h5" > /dev/null ||
    fail "$cmd could not replace its own output"
  for target in in.h5 notes.txt; do
    before=$(digest "$TMP/$target")
    expect_refusal "$cmd onto $target" "is not a cohort results file" \
      "$COHORT" $cmd --config "$TMP/c.yaml" --input "$TMP/in.h5" --output "$TMP/$target"
    [ "$(digest "$TMP/$target")" = "$before" ] || fail "$cmd changed $target"
  done
done
echo "compress and aggregate: own outputs replaced, foreign files untouched"
# 5. validate checks output.path as run would claim it: a foreign file is refused, an existing
#    results file gets a note (run needs --overwrite or --resume), a free path says nothing.
expect_refusal "validate onto notes.txt" "is not a cohort results file" \
  "$COHORT" validate "$CFG" output.path="$TMP/notes.txt"
"$COHORT" run "$CFG" rounds=1 output.progress_every=0 output.path="$TMP/done.h5" > /dev/null
"$COHORT" validate "$CFG" output.path="$TMP/done.h5" > "$TMP/v.out" ||
  fail "validate refused an existing results file"
grep -q "^note: .*already holds the results of a run.*--resume" "$TMP/v.out" ||
  fail "validate did not note the existing results: $(cat "$TMP/v.out")"
"$COHORT" validate "$CFG" output.path="$TMP/free.h5" > "$TMP/v.out"
! grep -q "^note:" "$TMP/v.out" || fail "validate noted a free path: $(cat "$TMP/v.out")"
echo "validate: output.path checked as run claims it"
echo "results ownership: all checks passed"
