#!/usr/bin/env bash
# Checkpoint size, write time, resume time and overhead (Note [Checkpoints]), recorded in
# results/bench_checkpoint.md:
#  - the quickstart (FedAvg, MLP on Fashion-MNIST, 10 clients, 10 rounds) at 2 ranks without
#    checkpoints, with checkpoint.every=10 and with checkpoint.every=1;
#  - a population of 10,000 clients (synthetic_linear, d = 2,001, 100 clients per round, top-k
#    with error feedback: every client sampled keeps d floats of memory) at 2 ranks, 40 rounds,
#    checkpoint.every=10;
#  - resuming each from its last checkpoint (load and set-up time: the run has no rounds left).
# About 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
OUT=results/bench/checkpoint
rm -rf "$OUT"
mkdir -p "$OUT"
MPI=(mpirun -np 2)
secs() { /usr/bin/python3 -c 'import sys,h5py; print("%.2f" % h5py.File(sys.argv[1],"r").attrs["wall_seconds"])' "$1"; }
row() {  # name, results file, log: wall time, checkpoints written, their sizes and write times
  local name=$1 h5=$2 log=$3
  local n size write
  n=$(grep -c "^checkpoint " "$log" || true)
  size=$( (ls -l "$h5.checkpoints"/round-*.ckpt 2>/dev/null || true) | awk '{s+=$5} END {if (NR) printf "%.2f", s/NR/1e6; else printf "-"}')
  write=$( (grep "^checkpoint " "$log" || true) | sed -E 's/.*\(([0-9.]+) s\)/\1/' | awk '{s+=$1} END {if (NR) printf "%.4f", s/NR; else printf "-"}')
  echo "| $name | $(secs "$h5") | $n | $size | $write |"
}
Q=(configs/quickstart.yaml output.progress_every=1)
{
  echo "# Checkpoints: size, write time, overhead and resume time"
  echo
  echo "Regenerate with \`bash scripts/bench_checkpoint.sh\` ($(nproc) cores, 2 ranks, $(date -u +%Y-%m-%d))."
  echo
  echo "| run | wall s | checkpoints | MB each | write s each (rank 0, gather included) |"
  echo "|---|---:|---:|---:|---:|"
  for every in 0 10 1; do
    "${MPI[@]}" "$COHORT" run "${Q[@]}" checkpoint.every=$every output.path="$OUT/q$every.h5" --overwrite > "$OUT/q$every.log"
    row "quickstart, checkpoint.every=$every" "$OUT/q$every.h5" "$OUT/q$every.log"
  done
  P=(tests/configs/invariance_linear.yaml data.dim=2000 data.samples_per_client=20
     clients.num_clients=10000 clients.per_round=100 rounds=40 algorithm.local_epochs=1
     compressor.name=topk compressor.ratio=0.01 compressor.error_feedback=true
     output.progress_every=10 eval.every=10 output.save_model=false)
  "${MPI[@]}" "$COHORT" run "${P[@]}" checkpoint.every=0 output.path="$OUT/p0.h5" --overwrite > "$OUT/p0.log"
  row "10^4 clients + error feedback, every=0" "$OUT/p0.h5" "$OUT/p0.log"
  "${MPI[@]}" "$COHORT" run "${P[@]}" checkpoint.every=10 output.path="$OUT/p10.h5" --overwrite > "$OUT/p10.log"
  row "10^4 clients + error feedback, every=10" "$OUT/p10.h5" "$OUT/p10.log"
  echo
  echo "Resume (load the newest checkpoint, set up, no rounds left):"
  echo
  echo "| run | resume wall s | a fresh start's set-up s |"
  echo "|---|---:|---:|"
  for c in "quickstart|q10|${Q[*]} checkpoint.every=10" "10^4 clients + error feedback|p10|${P[*]} checkpoint.every=10"; do
    IFS='|' read -r name tag args <<< "$c"
    read -r -a a <<< "$args"
    t0=$(date +%s.%N)
    "${MPI[@]}" "$COHORT" run "${a[@]}" output.path="$OUT/$tag.h5" --resume > "$OUT/$tag.resume.log"
    t1=$(date +%s.%N)
    "${MPI[@]}" "$COHORT" run "${a[@]}" rounds=1 checkpoint.every=0 output.path="$OUT/$tag.one.h5" --overwrite > /dev/null
    t2=$(date +%s.%N)
    # the one-round run's own round time is subtracted to leave its set-up
    one=$(/usr/bin/python3 -c 'import sys,h5py; f=h5py.File(sys.argv[1],"r"); print(float(f["rounds/time_round"][0]))' "$OUT/$tag.one.h5")
    echo "| $name | $(/usr/bin/python3 -c "print(round($t1 - $t0, 2))") | $(/usr/bin/python3 -c "print(round($t2 - $t1 - $one, 2))") |"
  done
} | tee results/bench_checkpoint.md
