#!/usr/bin/env bash
# A sweep's runs are "completed" only with the config the sweep resolves now; a signal to
# `cohort sweep` stops its runs and waits for them (Note [Stopping a local sweep]); one sweep per
# --out at a time, even after the sweep itself was killed (Note [One sweep per directory]).
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
source "$SRC/scripts/env.sh"
fail() { echo "FAIL: $*"; exit 1; }
Q=$SRC/configs/quadratic_drift.yaml
sweep_file() {  # sweep_file FILE ROUNDS NP: 2 runs (seeds 0, 1)
  printf 'base: %s\noverrides: {rounds: %s, eval.every: 0, output.progress_every: 0}\nseeds: 2\nnp: %s\nlocal: {jobs: 2}\n' \
    "$Q" "$2" "$3" > "$1"
}
rounds_in() {  # rounds_in DIR: the rounds: value each run's results file stores in its config
  HDF5_USE_FILE_LOCKING=FALSE "$PYTHON" - "$1" <<'PY'
import csv, sys, h5py, yaml
for r in csv.DictReader(open(f"{sys.argv[1]}/manifest.csv")):
    with h5py.File(r["results"], "r") as f:
        print(f.attrs["status"], yaml.safe_load(f.attrs["config"])["rounds"], len(f["rounds/round"]))
PY
}
# Processes started from this test whose command line names PATH (never anything else).
ours() { ps -eo pid=,args= | grep -F -- "$1" | grep -v grep | awk '{print $1}' || true; }

# 1. Editing the overrides (or the base config) reruns every run made with the old config.
cp "$Q" "$TMP/base.yaml"
sweep_file "$TMP/s.yaml" 3 1
sed -i "s#$Q#$TMP/base.yaml#" "$TMP/s.yaml"
"$COHORT" sweep "$TMP/s.yaml" --out "$TMP/a" > "$TMP/log"
[ "$(rounds_in "$TMP/a")" = $'completed 3 3\ncompleted 3 3' ] || fail "first sweep: $(rounds_in "$TMP/a")"
"$COHORT" sweep "$TMP/s.yaml" --out "$TMP/a" | grep -q "nothing to run" || fail "unchanged sweep ran again"
sed -i 's/rounds: 3/rounds: 4/' "$TMP/s.yaml"
"$COHORT" sweep "$TMP/s.yaml" --out "$TMP/a" > "$TMP/log"
grep -q "2 runs (0 completed, 2 to run)" "$TMP/log" || fail "edited overrides: $(cat "$TMP/log")"
grep -q "was made with another config" "$TMP/log" || fail "no word on stale results: $(cat "$TMP/log")"
[ "$(rounds_in "$TMP/a")" = $'completed 4 4\ncompleted 4 4' ] || fail "after the edit: $(rounds_in "$TMP/a")"
sed -i 's/local_lr: 0.05/local_lr: 0.04/' "$TMP/base.yaml"
"$COHORT" sweep "$TMP/s.yaml" --out "$TMP/a" > "$TMP/log"
grep -q "2 runs (0 completed, 2 to run)" "$TMP/log" || fail "edited base: $(cat "$TMP/log")"
# A results file of this sweep that was replaced by one of another config is run again too.
"$COHORT" run --overwrite "$TMP"/a/runs/r000_*/config.yaml seed=7 > /dev/null
"$COHORT" sweep "$TMP/s.yaml" --out "$TMP/a" > "$TMP/log"
grep -q "2 runs (1 completed, 1 to run)" "$TMP/log" || fail "a foreign config: $(cat "$TMP/log")"
echo "completed means completed with the current config"

# 2. A signal to the sweep reaches its runs (1 rank, and mpirun with 2), and the sweep returns
#    after they exited, with 130; a rerun resumes at once.
for case in "TERM 1" "INT 2" "HUP 2"; do
  set -- $case
  sig=$1 np=$2 out="$TMP/sig$sig"
  sweep_file "$TMP/long.yaml" 100000000 "$np"
  "$COHORT" sweep "$TMP/long.yaml" --out "$out" > "$TMP/sig.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    [ "$(ls "$out"/runs/*/metrics.h5.lock 2>/dev/null | wc -l)" -eq 2 ] && [ "$(ls "$out"/runs/*/metrics.h5 2>/dev/null | wc -l)" -eq 2 ] && break
    sleep 0.05
  done
  [ "$(ls "$out"/runs/*/metrics.h5 2>/dev/null | wc -l)" -eq 2 ] || fail "SIG$sig: runs did not start: $(cat "$TMP/sig.log")"
  kill -$sig $pid
  rc=0
  wait $pid || rc=$?
  [ "$rc" -eq 130 ] || fail "SIG$sig: sweep exited $rc: $(cat "$TMP/sig.log")"
  left=$(ours "$out/runs")
  [ -z "$left" ] || { kill -KILL $left; fail "SIG$sig: runs still going after the sweep returned"; }
  ls "$out"/runs/*/metrics.h5.lock > /dev/null 2>&1 && fail "SIG$sig: a run still holds its results file"
  grep -q "stopped by" "$TMP/sig.log" || fail "SIG$sig: no word on stopping: $(cat "$TMP/sig.log")"
  [ "$(rounds_in "$out" | cut -d' ' -f1 | sort -u)" = preempted ] ||
    fail "SIG$sig: the runs did not stop cleanly: $(rounds_in "$out")"
  sweep_file "$TMP/long.yaml" 2 "$np"
  "$COHORT" sweep "$TMP/long.yaml" --out "$out" > "$TMP/log" 2>&1 || fail "SIG$sig: rerun: $(cat "$TMP/log")"
  grep -q "2/2 done (0 failed)" "$TMP/log" || fail "SIG$sig: rerun: $(cat "$TMP/log")"
done
echo "signals reach the runs; the sweep waits for them"

# 3. One sweep per --out: a second is refused while the first, or a run it started, is alive,
#    even after the first sweep was killed with SIGKILL.
sweep_file "$TMP/long.yaml" 100000000 1
"$COHORT" sweep "$TMP/long.yaml" --out "$TMP/k" > "$TMP/k.log" 2>&1 &
pid=$!
for _ in $(seq 300); do [ "$(ls "$TMP"/k/runs/*/metrics.h5 2>/dev/null | wc -l)" -eq 2 ] && break; sleep 0.05; done
[ "$(ls "$TMP"/k/runs/*/metrics.h5 2>/dev/null | wc -l)" -eq 2 ] || fail "runs did not start: $(cat "$TMP/k.log")"
rc=0
"$COHORT" sweep "$TMP/long.yaml" --out "$TMP/k" > "$TMP/log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "another cohort sweep" "$TMP/log" || fail "second sweep: exit $rc: $(cat "$TMP/log")"
kill -KILL $pid
wait $pid 2>/dev/null || true
orphans=$(ours "$TMP/k/runs")
[ -n "$orphans" ] || fail "no run outlived the killed sweep: the case is not tested"
rc=0
"$COHORT" sweep "$TMP/long.yaml" --out "$TMP/k" > "$TMP/log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "another cohort sweep" "$TMP/log" || { kill -TERM $orphans; fail "after SIGKILL: exit $rc: $(cat "$TMP/log")"; }
kill -TERM $orphans
# They finish their round and write a checkpoint first: on a loaded machine that can take
# seconds, so wait up to a minute, and say so if they are still there.
for _ in $(seq 1200); do [ -z "$(ours "$TMP/k/runs")" ] && break; sleep 0.05; done
[ -z "$(ours "$TMP/k/runs")" ] || fail "the orphaned runs did not stop within 60 s of SIGTERM"
# A run started without mpirun has Open MPI's singleton daemon beside it, which inherited the
# lock too and leaves a moment after the run: wait for the lock itself to be free.
for _ in $(seq 1200); do flock -n "$TMP/k/sweep.lock" true && break; sleep 0.05; done
sweep_file "$TMP/long.yaml" 2 1
"$COHORT" sweep "$TMP/long.yaml" --out "$TMP/k" > "$TMP/log" 2>&1 || fail "after the runs ended: $(cat "$TMP/log")"
# ... and never into a directory that is not a sweep's: its files stay as they are.
mkdir "$TMP/mine"
echo "my table" > "$TMP/mine/manifest.csv"
rc=0
"$COHORT" sweep "$TMP/long.yaml" --out "$TMP/mine" > "$TMP/log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "neither empty nor the directory of a sweep" "$TMP/log" ||
  fail "a foreign --out: exit $rc: $(cat "$TMP/log")"
[ "$(cat "$TMP/mine/manifest.csv")" = "my table" ] && [ ! -e "$TMP/mine/runs" ] || fail "a foreign --out was written"
rc=0
"$COHORT" sweep "$TMP/long.yaml" --out "$TMP/mine/manifest.csv" > "$TMP/log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "--out naming a file: exit $rc: $(cat "$TMP/log")"
echo "one sweep per directory, only in its own directory"
echo "sweep resume and signals: all checks passed"
