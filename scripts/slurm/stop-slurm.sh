#!/usr/bin/env bash
# Stop the cluster that start-slurm.sh started from $COHORT_SLURM_DIR (default
# /var/tmp/cohort-slurm): cancel its jobs, send SIGTERM to slurmd, slurmctld and munged by their
# PID files only, wait for them to exit (SIGKILL after 15 s), then remove etc/, run/ and state/.
# log/ is kept for post-mortems. Safe to run when nothing is running.
set -euo pipefail
DIR=${COHORT_SLURM_DIR:-/var/tmp/cohort-slurm}
say() { echo "stop-slurm: $*" >&2; }
[ -d "$DIR" ] || { say "no cluster directory $DIR"; exit 0; }
DIR=$(cd "$DIR" && pwd -P)
[ -f "$DIR/cohort-slurm.dir" ] || { say "$DIR is not a cluster directory of start-slurm.sh"; exit 0; }
CONF=$DIR/etc/slurm.conf

pid_of() {  # pid_of NAME: print the pid in $DIR/run/NAME.pid if it is a NAME started for $DIR
  local pid
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) && [ -n "$pid" ] &&
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in "$1"*) true ;; *) false ;; esac &&
    tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF "$DIR/" && echo "$pid"
}

running() {  # running PID: the process exists and is not a zombie
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st%% *}" != Z ]
}

# Cancel jobs first, so that no job step (slurmstepd) outlives slurmd.
if pid_of slurmctld >/dev/null && [ -f "$CONF" ]; then
  export SLURM_CONF=$CONF
  if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
    say "cancelling jobs"
    scancel --user=root 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

# One at a time: slurmd and slurmctld still talk to munged while they shut down.
stopped=()
for d in slurmd slurmctld munged; do
  pid=$(pid_of $d) || continue
  kill -TERM "$pid" 2>/dev/null || true
  stopped+=("$d:$pid")
  for _ in $(seq 150); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then
    say "$d (pid $pid) still running after 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
done
rm -rf "${DIR:?}/etc" "$DIR/run" "$DIR/state"
if [ ${#stopped[@]} -eq 0 ]; then say "no daemons were running from $DIR; state removed"
else say "stopped ${stopped[*]} ($DIR; logs kept in $DIR/log)"; fi
