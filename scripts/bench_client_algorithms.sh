#!/usr/bin/env bash
# What the client algorithms cost (results/bench_client_algorithms.md):
#  1. time per round of fedavg, scaffold, mime, ditto (fedavg's global model + personal
#     steps), local (personal steps only) and fedprox (mu = 0.01) on the quickstart problem
#     (configs/quickstart.yaml: mlp [128] on Fashion-MNIST, 10 clients, all sampled, one local
#     epoch), ROUNDS rounds each on NP ranks, REPEATS interleaved passes, evaluation only after
#     the last round; median of /rounds/time_round over all rounds of all passes, and of the
#     slowest rank's local phase (/rounds/time_local_max), and the ratio to fedavg; and the
#     CPU seconds per round on one rank (a 12-round run minus a 2-round run, per round);
#  2. the client-state account cohort prints at start-up ("client state: ...") and the peak RSS
#     (attribute peak_rss_mib_max) for 10^4 clients (iid partition: 6 rows each) with scaffold,
#     ditto, local and fedavg with top-k (1%) + error feedback, in one round with 10 clients
#     sampled (state is made when a client first trains) and one with all 10^4 sampled (the
#     account's worst case, every client's state made).
# Run it on a quiet machine: timings are wall-clock. About 8 minutes on 2 cores (quiet).
# PARTS="time cpu state" (default: all) picks the parts; REPEATS and ROUNDS size the first.
# Writes results/bench/client_algorithms/ (not committed) and prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
NP=${NP:-2}
ROUNDS=${ROUNDS:-10}
REPEATS=${REPEATS:-3}
OUT=results/bench/client_algorithms
mkdir -p "$OUT"
# scaffold takes unweighted means of the sampled clients (the quickstart weighs by sample
# counts): every run uses the unweighted mean, so all do the same aggregation.
common=(output.save_model=false output.progress_every=0 aggregator.weighted=false)

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; NP=$NP"
# local (the personal steps alone, no message) and fedprox (fedavg's steps plus one d-vector
# pass per step, like ditto's pull) separate the cost of the steps from that of the vector work.
algs=("fedavg|algorithm.name=fedavg" "scaffold|algorithm.name=scaffold" "mime|algorithm.name=mime"
      "ditto|personalization.name=ditto" "local|personalization.name=local"
      "fedprox|algorithm.name=fedprox algorithm.mu=0.01")
PARTS=${PARTS:-"time cpu state"}
has() { [[ " $PARTS " == *" $1 "* ]]; }
# REPEATS passes over the algorithms, interleaved, so that load from elsewhere on the machine
# spreads over all of them.
has time && for rep in $(seq 1 "$REPEATS"); do
  for a in "${algs[@]}"; do
    name=${a%%|*}
    read -r -a ov <<< "${a#*|}"
    mpirun -np "$NP" "$COHORT" run --overwrite configs/quickstart.yaml rounds="$ROUNDS" eval.every=0 \
      "${common[@]}" output.path="$OUT/time_${name}_$rep.h5" "${ov[@]}" > "$OUT/time_${name}_$rep.log" 2>&1
  done
done
grep -h "model products" "$OUT"/time_fedavg_1.log "$OUT"/cpu_fedavg_12.log 2>/dev/null | head -1 || true

# CPU seconds per round, which load from elsewhere on a shared machine disturbs far less than
# wall-clock time: one rank, user + system time of a 12-round run minus that of a 2-round run,
# divided by 10 (start-up and data loading cancel).
if has cpu; then
  for a in "${algs[@]}"; do
    name=${a%%|*}
    read -r -a ov <<< "${a#*|}"
    for r in 2 12; do
      /usr/bin/time -f "cpu_seconds %U %S" -o "$OUT/cpu_${name}_$r.time" "$COHORT" run --overwrite \
        configs/quickstart.yaml rounds=$r eval.every=0 "${common[@]}" \
        output.path="$OUT/cpu_${name}_$r.h5" "${ov[@]}" > "$OUT/cpu_${name}_$r.log" 2>&1
    done
  done
fi

big=(clients.num_clients=10000 'data.partition={name: iid}' rounds=1 eval.every=0)
states=("fedavg|algorithm.name=fedavg" "scaffold|algorithm.name=scaffold"
        "ditto|personalization.name=ditto" "local|personalization.name=local"
        "fedavg_topk_ef|compressor.name=topk compressor.ratio=0.01 compressor.error_feedback=true")
has state && for s in "${states[@]}"; do
  name=${s%%|*}
  read -r -a ov <<< "${s#*|}"
  for per in 10 10000; do
    mpirun -np "$NP" "$COHORT" run --overwrite configs/quickstart.yaml "${big[@]}" clients.per_round=$per \
      "${common[@]}" output.path="$OUT/state_${name}_$per.h5" "${ov[@]}" > "$OUT/state_${name}_$per.log" 2>&1
  done
done

/usr/bin/python3 - "$OUT" "$REPEATS" <<'PY'
import os, sys, re, h5py, numpy as np
out, reps = sys.argv[1], int(sys.argv[2])
print("\n| algorithm | median s/round | ratio to fedavg | per-pass medians, s | min s/round | ratio of min to fedavg's | median local phase (slowest rank), s | uplink per round |")
print("|---|---:|---:|---|---:|---:|---:|---:|")
base = base_min = None
for name in ["fedavg", "scaffold", "mime", "ditto", "local", "fedprox"]:
    t, loc, per = [], [], []
    for rep in range(1, reps + 1):
        if not os.path.exists(f"{out}/time_{name}_{rep}.h5"):
            continue
        with h5py.File(f"{out}/time_{name}_{rep}.h5", "r") as f:
            r = f["rounds"]
            t += list(r["time_round"][()])
            loc += list(r["time_local_max"][()])
            per.append(float(np.median(r["time_round"][()])))
            up = float(np.median(r["uplink_bits"][()])) / 8 / 2**20
    if not t:
        continue
    med = float(np.median(t))
    base = base or med
    base_min = base_min or min(t)
    print(f"| {name} | {med:.3f} | {med / base:.2f} | {', '.join(f'{p:.3f}' for p in per)} | "
          f"{min(t):.3f} | {min(t) / base_min:.2f} | {float(np.median(loc)):.3f} | {up:.1f} MiB |")
def cpu(name, r):
    with open(f"{out}/cpu_{name}_{r}.time") as f:
        u, s = f.read().split("cpu_seconds")[-1].split()
    return float(u) + float(s)
if os.path.exists(f"{out}/cpu_fedavg_12.time"):
    print("\n| algorithm | CPU s/round (1 rank) | ratio to fedavg |")
    print("|---|---:|---:|")
    base = None
    for name in ["fedavg", "scaffold", "mime", "ditto", "local", "fedprox"]:
        c = (cpu(name, 12) - cpu(name, 2)) / 10
        base = base or c
        print(f"| {name} | {c:.3f} | {c / base:.2f} |")
if not os.path.exists(f"{out}/state_fedavg_10.log"):
    sys.exit(0)
print("\n| client state | sampled in the round | printed account (per rank) | peak RSS, MiB (max over ranks) |")
print("|---|---:|---|---:|")
for name in ["fedavg", "scaffold", "ditto", "local", "fedavg_topk_ef"]:
    for per in [10, 10000]:
        log = open(f"{out}/state_{name}_{per}.log").read()
        m = re.search(r"client state: (.*)", log)
        with h5py.File(f"{out}/state_{name}_{per}.h5", "r") as f:
            rss = float(f.attrs["peak_rss_mib_max"])
        print(f"| {name} | {per} | {m.group(1) if m else '?'} | {rss:.0f} |")
PY
