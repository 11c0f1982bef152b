#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine: munged, slurmctld and slurmd as root, node
# "localhost", partition "debug" (README.md, "Running sweeps on a cluster"). Every file of the
# cluster (config, munge key and socket, pid files, logs, state) lives under $COHORT_SLURM_DIR
# (default /var/tmp/cohort-slurm), so tests can run a private cluster; nothing is written to /etc
# or /run.
#
#   eval "$(scripts/slurm/start-slurm.sh)"     # prints: export SLURM_CONF=$COHORT_SLURM_DIR/etc/slurm.conf
#   sbatch ...; squeue; sacct -c
#   scripts/slurm/stop-slurm.sh                # same COHORT_SLURM_DIR
#
# COHORT_SLURM_PORT (default 6817) is the slurmctld port; slurmd uses the next one.
# Refuses (exit 1) if a cluster from the same directory is running or the ports are taken.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${COHORT_SLURM_DIR:-/var/tmp/cohort-slurm}
PORT=${COHORT_SLURM_PORT:-6817}
say() { echo "start-slurm: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the cluster runs SlurmUser=root)"
for prog in mungekey munged munge unmunge slurmctld slurmd sinfo; do
  command -v $prog >/dev/null ||
    die "$prog not found; install: apt-get install -y --no-install-recommends slurm-wlm munge"
done
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
CONF=$DIR/etc/slurm.conf
MARK=$DIR/cohort-slurm.dir  # the scripts only wipe directories that carry this mark
[ -f "$MARK" ] || [ -z "$(ls -A "$DIR")" ] ||
  die "$DIR is neither empty nor a cluster directory of these scripts; choose another COHORT_SLURM_DIR"

pid_of() {  # pid_of NAME: print the pid in $DIR/run/NAME.pid if it is a NAME started for $DIR
  local pid
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) && [ -n "$pid" ] &&
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in "$1"*) true ;; *) false ;; esac &&
    tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF "$DIR/" && echo "$pid"
}
for d in munged slurmctld slurmd; do
  pid=$(pid_of $d) && die "a cluster from $DIR is already running ($d pid $pid); stop it first: COHORT_SLURM_DIR=$DIR $HERE/stop-slurm.sh"
done
for p in $PORT $((PORT + 1)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "port $p is in use (another SLURM cluster?); stop it or set COHORT_SLURM_PORT"
  fi
done

# munged insists that every directory above its socket is searchable by all (not so for mktemp -d).
d=$DIR
while d=$(dirname "$d"); [ "$d" != / ]; do
  [ "$(($(stat -c %#a "$d") & 1))" = 1 ] ||
    die "munged needs every directory above $DIR/run to be searchable by all: chmod o+x $d"
done
# Fresh state.
rm -rf "${DIR:?}/etc" "$DIR/run" "$DIR/state" "$DIR/log"
echo "cluster directory of scripts/slurm/start-slurm.sh" > "$MARK"
mkdir -p "$DIR/etc" "$DIR/run" "$DIR/state/ctld" "$DIR/state/d" "$DIR/log"
chmod 755 "$DIR" "$DIR/etc" "$DIR/run"

fail() {  # stop whatever was started, show the logs, exit 1
  say "$*"
  for f in "$DIR"/log/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  COHORT_SLURM_DIR=$DIR "$HERE/stop-slurm.sh" >&2 || true
  exit 1
}

HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
sed -e "s|@DIR@|$DIR|g" -e "s|@HOST@|$HOST|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM@|$MEM|g" \
    -e "s|@PORT@|$PORT|g" -e "s|@DPORT@|$((PORT + 1))|g" "$HERE/slurm.conf.in" > "$CONF"
export SLURM_CONF=$CONF

SOCK=$DIR/run/munge.socket
mungekey --create --keyfile="$DIR/etc/munge.key" || fail "mungekey failed"
munged --socket="$SOCK" --key-file="$DIR/etc/munge.key" --pid-file="$DIR/run/munged.pid" \
  --log-file="$DIR/log/munged.log" --seed-file="$DIR/state/munged.seed" || fail "munged failed to start"
munge -n -S "$SOCK" | unmunge -S "$SOCK" | grep -q 'STATUS: *Success' || fail "munge self-test failed"
slurmctld -f "$CONF" || fail "slurmctld failed to start"
slurmd -f "$CONF" -N localhost || fail "slurmd failed to start"  # NodeName is not the hostname

T0=$SECONDS
TIMEOUT=${COHORT_SLURM_TIMEOUT:-30}
state=
while [ "$state" != idle ]; do
  for d in munged slurmctld slurmd; do  # the pid file appears a little after the daemon forks
    [ ! -s "$DIR/run/$d.pid" ] || pid_of $d > /dev/null || fail "$d exited during startup"
  done
  ((SECONDS - T0 < TIMEOUT)) || fail "node not idle after ${TIMEOUT} s (state: '${state:-none}')"
  sleep 0.1
  state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
done
say "cluster up in $DIR (host $HOST, $CPUS CPUs, ${MEM} MiB, ports $PORT/$((PORT + 1)))"
echo "export SLURM_CONF=$CONF"
