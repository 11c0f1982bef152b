#!/usr/bin/env bash
# Crashes and signals (Note [Crash-consistent results file], Note [Stopping mid-round]):
#  - kill -9 at random points, 50 runs at 1 and 2 ranks with short rounds (about 30 s in all):
#    every results file opens with h5py, all /rounds series of one length, rounds numbered 1..n,
#    every round printed as done present and at most one more;
#  - kill -9 of the whole job, then --resume at another rank count: the same results;
#  - a results file damaged by a kill of an older cohort (HDF5 signature, unreadable) is replaced
#    only by --resume with a checkpoint of the same config in PATH.checkpoints, never a file
#    without the HDF5 signature;
#  - SIGTERM to a rank during a long round ends the run within seconds, the round dropped on
#    every rank: exit 130, status preempted, the checkpoint of the last completed round, and
#    --resume gives the results of the run that never stopped;
#  - Open MPI's mpirun: SIGUSR1 is forwarded (exit 130); SIGTERM is forwarded too but mpirun
#    exits 1 (README "Checkpoints, resuming and preemption"); `cohort run --np 2` turns SIGTERM,
#    SIGINT and SIGHUP into exit 130; kill -9 of one rank ends the job within 30 s naming the
#    lost rank.
set -euo pipefail
: "${COHORT:?} ${MPIEXEC:?} ${PYTHON:?} ${SRC:?}"
CFG="$SRC/tests/configs/invariance_linear.yaml"
source "$SRC/tests/cli/lib.sh"
now() { date +%s.%N; }
elapsed() { "$PYTHON" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

# check_files H5 LOG EXTRA [H5 LOG EXTRA ...]: each H5 readable, every series of one length,
# holding every round its LOG printed and at most EXTRA more (one Python for all: its start-up
# would be most of the time).
check_files() {
  local args=() done
  while [ $# -gt 0 ]; do
    done=$(grep -o '^round *[0-9]*' "$2" | tail -1 | grep -o '[0-9]*$' || true)
    args+=("$1" "${done:-0}" "$3")
    shift 3
  done
  "$PYTHON" - "${args[@]}" <<'PY'
import sys, h5py, numpy as np

def check(path, done, extra):
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        assert done == 0, f"{path} missing after {done} rounds"
        return
    with f:
        assert f.attrs["status"] in ("running", "completed", "preempted", "failed"), f.attrs["status"]
        assert "config" in f.attrs
        if "rounds" not in f:
            assert done == 0, f"{path}: no /rounds after {done} rounds"
            return
        lengths = {k: len(f["rounds"][k]) for k in f["rounds"]}
        n = lengths["round"]
        assert set(lengths.values()) == {n}, lengths
        # Every round printed is in the file (published before it is printed), and with a line
        # printed for every round at most one more (published, killed before printing): Note
        # [Crash-consistent results file].
        assert done <= n <= done + extra, f"{path}: {n} rounds in the file, {done} printed"
        assert (f["rounds/round"][:] == np.arange(1, n + 1)).all()
        for k in f["rounds"]:
            f["rounds"][k][:]
        for k in f.get("clients", {}):
            f["clients"][k][:]

a = sys.argv[1:]
for i in range(0, len(a), 3):
    check(a[i], int(a[i + 1]), int(a[i + 2]))
PY
}

# kill_job JOB OUT: SIGKILL to every rank writing OUT, until JOB (the rank or mpirun) is gone.
# Under mpirun the ranks may not exist yet: whatever exists is killed until the job is gone.
# Open MPI's mpirun may hang when a rank dies inside MPI_Init; after 2 s it is killed too (the
# results file is what is checked here).
kill_job() {
  local job=$1 out=$2
  for k in $(seq 200); do
    kill -0 "$job" 2> /dev/null || break
    pkill -KILL -f "^$COHORT run .*output.path=$out\$" || true
    [ "$k" -lt 100 ] || kill -KILL "$job" 2> /dev/null || true
    sleep 0.02
  done
  wait "$job" 2> /dev/null || true
}

# 1. kill -9 at random points.
t0=$(now)
RANDOM=11
files=()
for i in $(seq 50); do
  np=$((i % 5 == 0 ? 2 : 1))  # mpirun start-up is most of a run's cost
  out="$TMP/k$i.h5"
  args=(run "$CFG" rounds=1000000 eval.every=7 output.progress_every=1 output.path="$out")
  if [ $np -eq 1 ]; then "$COHORT" "${args[@]}" > "$TMP/k$i.log" 2>&1 &
  else "${MPI[@]}" -n 2 "$COHORT" "${args[@]}" > "$TMP/k$i.log" 2>&1 & fi
  job=$!
  # Half the kills come soon after the start, half once rounds are being written.
  if [ $((i % 4)) -lt 2 ]; then
    for _ in $(seq 300); do [ -e "$out" ] && break; sleep 0.01; done
  fi
  sleep "0.$(printf '%03d' $((RANDOM % 400)))"
  kill_job $job "$out"
  files+=("$out" "$TMP/k$i.log" 1)
done
check_files "${files[@]}" || { echo "FAIL: a file killed with SIGKILL"; exit 1; }
echo "crash: 50 runs killed with SIGKILL at random points, every file readable ($(elapsed "$t0") s)"

# 1b. kill -9 of the whole job, then --resume at another rank count: the results of the run that
#     never stopped (times aside), from the last checkpoint before the kill.
ref=(rounds=4000 eval.every=7 output.progress_every=0 checkpoint.every=250)
"$COHORT" run "$CFG" "${ref[@]}" output.path="$TMP/r9ref.h5" > /dev/null
for i in 1 2 3; do
  np=$((i == 2 ? 2 : 1))
  out="$TMP/r9_$i.h5"
  if [ $np -eq 1 ]; then "$COHORT" run "$CFG" "${ref[@]}" output.path="$out" > /dev/null 2>&1 &
  else "${MPI[@]}" -n 2 "$COHORT" run "$CFG" "${ref[@]}" output.path="$out" > /dev/null 2>&1 & fi
  job=$!
  for _ in $(seq 300); do ls "$out.checkpoints"/*.ckpt > /dev/null 2>&1 && break; sleep 0.01; done
  sleep "0.$((RANDOM % 3))"
  kill_job $job "$out"
  status=$("$PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['status'])" "$out")
  [ "$status" = running ] || { echo "FAIL: resume $i: the run was not killed mid-way ($status)"; exit 1; }
  "${MPI[@]}" -n $((3 - np)) "$COHORT" run "$CFG" "${ref[@]}" output.path="$out" --resume > "$TMP/r9_$i.log"
  grep -q "resuming from" "$TMP/r9_$i.log" || { echo "FAIL: resume $i"; cat "$TMP/r9_$i.log"; exit 1; }
  cmp "$TMP/r9ref.h5" "$out" || { echo "FAIL: resume $i after kill -9 differs"; exit 1; }
done
echo "crash: 3 runs killed with SIGKILL and resumed at another rank count: identical results"

# 2. A results file damaged by a kill of an older cohort.
base=(rounds=4 output.progress_every=0 checkpoint.every=2)
"$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/dmg.h5" > /dev/null
"$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/ref.h5" > /dev/null
truncate -s 3000 "$TMP/dmg.h5"   # the signature stays; HDF5 cannot open it
expect_usage dmg_plain "cannot be read" "$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/dmg.h5"
expect_usage dmg_over "cannot be read" "$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/dmg.h5" --overwrite
expect_usage dmg_validate "cannot be read" "$COHORT" validate "$CFG" "${base[@]}" output.path="$TMP/dmg.h5"
[ $failures -eq 0 ] || exit 1
"$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/dmg.h5" --resume > "$TMP/dmg.log"
grep -q "resuming from .*round-00000004.ckpt" "$TMP/dmg.log"
cmp --ignore-config "$TMP/ref.h5" "$TMP/dmg.h5"
# Without a checkpoint, or without the HDF5 signature: never replaced.
cp "$TMP/dmg.h5" "$TMP/nock.h5" && truncate -s 3000 "$TMP/nock.h5"
expect_usage dmg_nock "cannot be read" "$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/nock.h5" --resume
head -c 3000 /dev/urandom > "$TMP/dmg.h5"
expect_usage dmg_foreign "is not a cohort results file" \
  "$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/dmg.h5" --resume
[ $failures -eq 0 ] || exit 1
echo "crash: a damaged results file is replaced only by --resume with this config's checkpoint"

# 3. SIGTERM to one rank during a long round: the round is dropped on every rank.
long=(rounds=3 eval.every=0 output.progress_every=1 checkpoint.every=0
      algorithm.local_epochs=0 algorithm.local_steps=1000000)
"${MPI[@]}" -n 2 "$COHORT" run "$CFG" "${long[@]}" output.path="$TMP/long.h5" > "$TMP/long.log" 2>&1 &
job=$!
for _ in $(seq 600); do grep -q '^round 1/3' "$TMP/long.log" && break; sleep 0.05; done
sleep 0.3
pid=$(pgrep -f "^$COHORT run .*output.path=$TMP/long.h5\$" | tail -1)
t0=$(now)
kill -TERM "$pid"
set +e
wait $job
rc=$?
set -e
stop=$(elapsed "$t0")
[ $rc -eq 130 ] || { echo "FAIL: long round: exit $rc"; cat "$TMP/long.log"; exit 1; }
grep -q "during round 2 of 3 (dropped; 1 rounds done)" "$TMP/long.log" || { cat "$TMP/long.log"; exit 1; }
ls "$TMP/long.h5.checkpoints/round-00000001.ckpt" > /dev/null
"$PYTHON" - "$TMP/long.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["status"] == "preempted", f.attrs["status"]
    assert len(f["rounds/round"]) == 1
PY
"${MPI[@]}" -n 1 "$COHORT" run "$CFG" "${long[@]}" output.path="$TMP/long.h5" --resume > /dev/null
"$COHORT" run "$CFG" "${long[@]}" output.path="$TMP/longref.h5" > /dev/null
cmp "$TMP/longref.h5" "$TMP/long.h5"
echo "crash: SIGTERM to a rank mid-round: exit 130 after $stop s, round dropped, resume exact"

# 4. Signals to mpirun, and a rank lost to kill -9.
# signal_job NAME SIG CMD...: `CMD $CFG` runs 10^6 rounds into $TMP/NAME.h5 (log $TMP/NAME.log)
# and gets SIG once it printed a round; sets rc (its exit code) and took (seconds from the
# signal to its exit), and checks the file (a progress line every 100 rounds).
signal_job() {
  local name=$1 sig=$2
  shift 2
  "$@" "$CFG" rounds=1000000 eval.every=0 output.progress_every=100 \
    output.path="$TMP/$name.h5" > "$TMP/$name.log" 2>&1 &
  local job=$!
  for _ in $(seq 600); do grep -q '^round' "$TMP/$name.log" && break; sleep 0.05; done
  t0=$(now)
  kill -"$sig" $job
  set +e
  wait $job
  rc=$?
  set -e
  took=$(elapsed "$t0")
  check_files "$TMP/$name.h5" "$TMP/$name.log" 1000000
}
# to_mpirun SIG: `mpirun -np 2` given SIG during a run.
to_mpirun() { signal_job "mp$1" "$1" "${MPI[@]}" -n 2 "$COHORT" run; }
to_mpirun USR1
[ $rc -eq 130 ] || { echo "FAIL: SIGUSR1 to mpirun: exit $rc"; cat "$TMP/mpUSR1.log"; exit 1; }
"$PYTHON" -c "import h5py,sys; assert h5py.File(sys.argv[1])['/'].attrs['status'] == 'preempted'" "$TMP/mpUSR1.h5"
echo "crash: SIGUSR1 to mpirun: exit 130 after $took s, status preempted"
# Open MPI gives the ranks one second before SIGKILL (README): the file is readable, and when
# the ranks made it in time it says preempted and the checkpoint is there.
to_mpirun TERM
[ $rc -eq 1 ] || { echo "FAIL: SIGTERM to mpirun: exit $rc (Open MPI exits 1)"; cat "$TMP/mpTERM.log"; exit 1; }
status=$("$PYTHON" - "$TMP/mpTERM.h5" <<'PY'
import glob, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    status, n = f.attrs["status"], len(f["rounds/round"])
assert status in ("running", "preempted"), status
assert status == "running" or glob.glob(f"{sys.argv[1]}.checkpoints/round-{n:08d}.ckpt"), "no checkpoint"
print(status)
PY
)
echo "crash: SIGTERM to mpirun: exit 1 after $took s (Open MPI's code), file readable, status $status"

# `cohort run --np 2` stands between the signals and mpirun (Note [Launching under mpiexec]):
# SIGTERM, SIGINT or SIGHUP to it give exit 130 and status preempted, like a signal to a rank.
for sig in TERM INT HUP; do
  MPIEXEC="${MPI[*]}" signal_job "np$sig" "$sig" "$COHORT" run --np 2
  [ $rc -eq 130 ] || { echo "FAIL: SIG$sig to cohort run --np 2: exit $rc"; cat "$TMP/np$sig.log"; exit 1; }
  "$PYTHON" - "$TMP/np$sig.h5" <<'PY'
import glob, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["status"] == "preempted", f.attrs["status"]
    n = len(f["rounds/round"])
assert glob.glob(f"{sys.argv[1]}.checkpoints/round-{n:08d}.ckpt"), "no checkpoint"
PY
  echo "crash: SIG$sig to cohort run --np 2: exit 130 after $took s, status preempted, checkpoint written"
done

"${MPI[@]}" -n 2 "$COHORT" run "$CFG" rounds=1000000 eval.every=0 output.progress_every=100 \
  output.path="$TMP/lost.h5" > "$TMP/lost.log" 2>&1 &
job=$!
for _ in $(seq 600); do grep -q '^round' "$TMP/lost.log" && break; sleep 0.05; done
pid=$(pgrep -f "^$COHORT run .*output.path=$TMP/lost.h5\$" | tail -1)
rank=$(tr '\0' '\n' < "/proc/$pid/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
t0=$(now)
kill -KILL "$pid"
set +e
timeout 60 tail --pid=$job -f /dev/null
wait $job
rc=$?
set -e
took=$(elapsed "$t0")
[ $rc -ne 0 ] || { echo "FAIL: a lost rank left exit 0"; exit 1; }
"$PYTHON" -c "import sys; sys.exit(float(sys.argv[1]) > 30)" "$took" || { echo "FAIL: took $took s"; exit 1; }
grep -q "rank $rank .*signal 9" "$TMP/lost.log" || { echo "FAIL: lost rank not named"; cat "$TMP/lost.log"; exit 1; }
check_files "$TMP/lost.h5" "$TMP/lost.log" 1000000
echo "crash: kill -9 of rank $rank at -np 2: job ended after $took s (exit $rc), naming the rank"
echo "crash: all checks passed"
