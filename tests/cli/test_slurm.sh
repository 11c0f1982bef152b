#!/usr/bin/env bash
# `cohort sweep --launcher slurm --submit` on a private one-node SLURM cluster: the job array
# completes every run, collect.py summarises them, a second submit finds nothing to run, and the
# same sweep run with --launcher local gives identical metrics. Installs slurm-wlm and munge when
# missing (needs root and apt), starts the cluster with scripts/slurm/start-slurm.sh in a temporary
# directory on free ports, and always stops it by its PID files.
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
T0=$SECONDS
SWEEP_FILE=$SRC/tests/configs/sweep_slurm.yaml
TMP=$(mktemp -d)
chmod 755 "$TMP"  # munged wants every directory above its socket searchable by all
export COHORT_SLURM_DIR=$TMP/slurm
note() { echo "test_slurm: $* [+$((SECONDS - T0)) s]"; }

dump() {  # what a failure needs to be understood
  for f in "$TMP"/sweep/sweep.sbatch "$TMP"/*.log "$COHORT_SLURM_DIR"/log/slurm*.log \
           "$TMP"/sweep/runs/*/log.txt "$TMP"/sweep/slurm-*.out "$TMP"/sweep/runs/slurm-*.out; do
    [ -s "$f" ] && { echo "----- $f"; tail -n 25 "$f"; }
  done
  [ -n "${SLURM_CONF:-}" ] && { squeue -t all 2>&1 || true; sacct -c -o jobid,state,exitcode 2>&1 || true; }
}
fail() { echo "FAIL: $*"; dump 2>/dev/null || true; exit 1; }
cleanup() {  # stop the cluster unless the test already did (stop-slurm.sh removes run/)
  if [ -d "$COHORT_SLURM_DIR/run" ]; then
    "$SRC/scripts/slurm/stop-slurm.sh" || echo "FAIL: stop-slurm.sh failed"
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- packages -----------------------------------------------------------------------------
have() { for p in "$@"; do command -v "$p" >/dev/null || return 1; done; }
PROGS=(munged mungekey slurmctld slurmd sbatch squeue scancel sinfo)
if ! have "${PROGS[@]}"; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    fail "slurm-wlm/munge are not installed and cannot be (needs root and apt-get)"
  fi
  note "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  APT=(apt-get install -y -q --no-install-recommends slurm-wlm munge)
  "${APT[@]}" > "$TMP/apt.log" 2>&1 || { apt-get update -q >> "$TMP/apt.log" 2>&1 && "${APT[@]}" >> "$TMP/apt.log" 2>&1; } ||
    { tail -n 20 "$TMP/apt.log"; fail "apt-get install slurm-wlm munge failed (log above)"; }
  have "${PROGS[@]}" || fail "slurm-wlm/munge installed but ${PROGS[*]} not all on PATH"
fi
[ "$(id -u)" = 0 ] || fail "the private cluster runs SlurmUser=root: run this test as root"
"$COHORT" sweep --help > /dev/null 2>&1 || fail "$COHORT has no 'sweep' command"

# --- cluster on a free pair of ports (a developer's cluster may hold 6817/6818) ---------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
export COHORT_SLURM_PORT=
for p in $(seq 16817 2 16899); do
  port_free "$p" && port_free $((p + 1)) && { COHORT_SLURM_PORT=$p; break; }
done
[ -n "$COHORT_SLURM_PORT" ] || fail "no free port pair in 16817-16900"
env=$("$SRC/scripts/slurm/start-slurm.sh" 2> "$TMP/start.log") || fail "start-slurm.sh failed"
eval "$env"
[ -n "${SLURM_CONF:-}" ] || fail "start-slurm.sh printed no SLURM_CONF: $env"
PIDS=$(cat "$COHORT_SLURM_DIR"/run/*.pid | tr '\n' ' ')
note "cluster up (port $COHORT_SLURM_PORT, pids $PIDS)"
"$SRC/scripts/slurm/start-slurm.sh" > /dev/null 2> "$TMP/start2.log" &&
  fail "a second start-slurm.sh from the same directory did not refuse"
grep -q "already running" "$TMP/start2.log" || fail "second start-slurm.sh: $(cat "$TMP/start2.log")"

# Only mpirun needs these (the local launcher); srun --mpi=pmix does not.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# --- submit the sweep as a job array and wait for it ----------------------------------------
"$COHORT" sweep "$SWEEP_FILE" --out "$TMP/sweep" --launcher slurm --submit > "$TMP/submit1.log" 2>&1 ||
  fail "cohort sweep --launcher slurm --submit failed: $(tail -n 5 "$TMP/submit1.log")"
[ -s "$TMP/sweep/sweep.sbatch" ] || fail "no $TMP/sweep/sweep.sbatch"
JOBID=$(cat "$TMP/sweep/slurm_job_id" 2>/dev/null || true)
[[ "$JOBID" =~ ^[0-9]+$ ]] || fail "slurm_job_id is '$JOBID', not a job id"
grep -qw "$JOBID" "$TMP/submit1.log" || fail "cohort sweep did not print the job id $JOBID"
note "submitted job array $JOBID"
DEADLINE=$((SECONDS + 300))
while :; do
  queued=$(squeue -h -j "$JOBID" 2>&1) || fail "squeue -j $JOBID failed: $queued"
  [ -z "$queued" ] && break
  ((SECONDS < DEADLINE)) || { scancel "$JOBID" || true; fail "job array $JOBID not done after 300 s"; }
  sleep 0.5
done
note "job array $JOBID finished"

# --- every run completed; collect.py sees the 4 grid points ---------------------------------
check_completed() {  # DIR: 4 runs in the manifest, each results file with status completed
  "$PYTHON" - "$1" <<'EOF' || fail "runs in $1 not all completed"
import csv, os, sys
os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
import h5py
d = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(d, "manifest.csv"))))
col = next(c for c in ("results", "results_path") if c in rows[0])
bad = 0
for r in rows:
    p = r[col] if os.path.isabs(r[col]) else os.path.join(d, r[col])
    status = h5py.File(p, "r").attrs["status"] if os.path.exists(p) else "missing"
    if status != "completed":
        print(f"FAIL: run {r['run_id']}: status {status} ({p})")
        bad += 1
if len(rows) != 4:
    print(f"FAIL: manifest {d}/manifest.csv has {len(rows)} runs, expected 4")
    bad += 1
sys.exit(1 if bad else 0)
EOF
}
check_completed "$TMP/sweep"
"$PYTHON" "$SRC/scripts/collect.py" "$TMP/sweep" > "$TMP/collect.log" 2>&1 ||
  fail "collect.py failed: $(cat "$TMP/collect.log")"
"$PYTHON" - "$TMP/sweep/summary.csv" <<'EOF' || fail "summary.csv is wrong: $(cat "$TMP/collect.log")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
steps = next(c for c in rows[0] if c.endswith("local_steps"))
seed = next(c for c in rows[0] if c in ("seed", "seeds"))
got = sorted((int(r[steps]), int(r[seed])) for r in rows)
want = [(1, 0), (1, 1), (10, 0), (10, 1)]
ok = got == want and all(r["status"] == "completed" and int(r["rounds"]) == 20 for r in rows)
if not ok:
    print(f"FAIL: summary rows {got} (want {want}), statuses {[r['status'] for r in rows]}, "
          f"rounds {[r['rounds'] for r in rows]}")
sys.exit(0 if ok else 1)
EOF
cat "$TMP/collect.log"
note "collect.py: 4 completed runs"

# --- a second submit finds everything completed and submits nothing -------------------------
before=$(squeue -h -t all -o %i | sort -u)
"$COHORT" sweep "$SWEEP_FILE" --out "$TMP/sweep" --launcher slurm --submit > "$TMP/submit2.log" 2>&1 ||
  fail "second cohort sweep --submit failed: $(tail -n 5 "$TMP/submit2.log")"
grep -qi "nothing to run" "$TMP/submit2.log" || fail "second submit did not say 'nothing to run': $(cat "$TMP/submit2.log")"
after=$(squeue -h -t all -o %i | sort -u)
[ "$before" = "$after" ] || fail "second submit queued a job: $(diff <(echo "$before") <(echo "$after") || true)"
note "second submit: nothing to run"

# --- the same sweep run locally gives identical metrics -------------------------------------
"$COHORT" sweep "$SWEEP_FILE" --out "$TMP/local" --launcher local > "$TMP/local.log" 2>&1 ||
  fail "cohort sweep --launcher local failed: $(tail -n 5 "$TMP/local.log")"
check_completed "$TMP/local"
note "local sweep done"
for run in "$TMP"/sweep/runs/*/; do
  id=$(basename "$run")
  "$PYTHON" "$SRC/tests/compare_runs.py" "$run/metrics.h5" "$TMP/local/runs/$id/metrics.h5" > "$TMP/compare.log" 2>&1 ||
    fail "run $id differs between SLURM and local: $(cat "$TMP/compare.log")"
done

# --- hostile --out: the directives, the script's shell lines and sbatch's argument vector keep
#     it one literal path (Note [Sweep values are data]) ----------------------------------------
HOSTILE="$TMP/h;touch PWNED1 \$(touch PWNED2) \`touch PWNED3\` 'q\" #c %A %%"
cat > "$TMP/hostile.yaml" <<YAML
base: $SRC/configs/quadratic_drift.yaml
overrides: {rounds: 2, output.progress_every: 0}
np: 1
slurm: {partition: debug, time: "00:05:00", ntasks: 1, launch: srun}
YAML
(cd "$TMP" && "$COHORT" sweep "$TMP/hostile.yaml" --out "$HOSTILE" --launcher slurm --submit) > "$TMP/hostile.log" 2>&1 ||
  fail "hostile --out: cohort sweep failed: $(cat "$TMP/hostile.log")"
HJOB=$(cat "$HOSTILE/slurm_job_id")
DEADLINE=$((SECONDS + 120))
while [ -n "$(squeue -h -j "$HJOB" 2>/dev/null)" ]; do
  ((SECONDS < DEADLINE)) || { scancel "$HJOB" || true; fail "hostile job $HJOB not done after 120 s"; }
  sleep 0.5
done
for f in PWNED1 PWNED2 PWNED3; do  # the job runs in the directory it was submitted from
  [ ! -e "$TMP/$f" ] || fail "hostile --out executed a payload: $TMP/$f exists"
done
ls "$HOSTILE/runs/slurm-${HJOB}_0.out" > /dev/null 2>&1 ||
  fail "hostile --out: no $HOSTILE/runs/slurm-${HJOB}_0.out: $(find "$TMP" -name "slurm-${HJOB}*")"
check_status() {
  HDF5_USE_FILE_LOCKING=FALSE "$PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['status'])" "$1"
}
[ "$(check_status "$HOSTILE"/runs/r000/metrics.h5)" = completed ] ||
  fail "hostile --out: run not completed: $(cat "$HOSTILE"/runs/r000/log.txt "$HOSTILE"/runs/slurm-*.out)"
note "hostile --out: job $HJOB ran with its output where --out says, no payload executed"

# --- preemption: `scontrol requeue` of a running task; the requeued task resumes from the
#     checkpoint its ranks wrote on SIGTERM, and its results equal the uninterrupted run's -------
cat > "$TMP/requeue.yaml" <<YAML
base: $SRC/configs/quadratic_drift.yaml
overrides: {rounds: 30000, output.progress_every: 0, eval.every: 0}
np: 1
slurm: {partition: debug, time: "00:05:00", ntasks: 1, launch: srun}
YAML
"$COHORT" sweep "$TMP/requeue.yaml" --out "$TMP/requeue" --launcher slurm --submit > "$TMP/requeue.log" 2>&1 ||
  fail "requeue sweep: $(cat "$TMP/requeue.log")"
grep -q "^#SBATCH --signal=B:USR1@120$" "$TMP/requeue/sweep.sbatch" || fail "no --signal directive"
grep -q "^#SBATCH --requeue" "$TMP/requeue/sweep.sbatch" || fail "no --requeue directive"
RJOB=$(cat "$TMP/requeue/slurm_job_id")
RLOG="$TMP/requeue/runs/r000/log.txt"
DEADLINE=$((SECONDS + 60))
until grep -q "results ->" "$RLOG" 2>/dev/null; do
  ((SECONDS < DEADLINE)) || fail "requeue: the run did not start"
  sleep 0.2
done
sleep 1
scontrol requeue "${RJOB}_0" || fail "scontrol requeue ${RJOB}_0 failed"
note "requeued ${RJOB}_0 mid-run"
DEADLINE=$((SECONDS + 180))
while [ -n "$(squeue -h -j "$RJOB" 2>/dev/null)" ]; do
  ((SECONDS < DEADLINE)) || { scancel "$RJOB" || true; fail "requeued job $RJOB not done after 180 s"; }
  sleep 0.5
done
grep -q "run preempted" "$RLOG" || fail "requeue: the first attempt was not preempted: $(cat "$RLOG")"
grep -q "resuming from .*round-" "$RLOG" || fail "requeue: the second attempt did not resume: $(cat "$RLOG")"
[ "$(check_status "$TMP/requeue/runs/r000/metrics.h5")" = completed ] || fail "requeue: not completed"
"$COHORT" run "$TMP/requeue/runs/r000/config.yaml" output.path="$TMP/requeue_ref.h5" > /dev/null ||
  fail "requeue: the uninterrupted reference run failed"
"$PYTHON" "$SRC/tests/compare_runs.py" --ignore-config "$TMP/requeue_ref.h5" \
  "$TMP/requeue/runs/r000/metrics.h5" > "$TMP/compare.log" 2>&1 ||
  fail "requeued run differs from the uninterrupted one: $(cat "$TMP/compare.log")"
note "requeue: the requeued task resumed and equals the uninterrupted run"

# --- stop the cluster and check that no daemon is left ----------------------------------------
"$SRC/scripts/slurm/stop-slurm.sh" 2> "$TMP/stop.log" || fail "stop-slurm.sh failed: $(cat "$TMP/stop.log")"
for pid in $PIDS; do
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null || true)
  [ -z "$state" ] || [ "${state%% *}" = Z ] || fail "daemon pid $pid still running after stop-slurm.sh"
done
note "PASS: SLURM sweep of 4 runs completed, summarised, resubmit no-op, identical to local"
