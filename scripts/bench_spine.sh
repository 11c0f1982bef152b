#!/usr/bin/env bash
# Spine benchmark: rounds per second, time per round by phase and peak memory per rank for
#  - configs/quickstart.yaml at -np 1 and -np 2,
#  - configs/bench_logreg_1000.yaml (1,000 logreg clients) with 10 and 100 clients per round,
# beside this machine's memory bandwidth measured by `cohort bench memory`.
# Writes results/bench_spine.md (table) and results/bench_spine.csv. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
OUT=results/bench
mkdir -p "$OUT"

"$COHORT" bench memory --megabytes 256 --repeats 5 --json "$OUT/memory.json" | tee "$OUT/memory.txt"

run() {  # label np config overrides...
  local label=$1 np=$2 cfg=$3
  shift 3
  echo "[bench] $label (np $np)"
  mpirun -np "$np" "$COHORT" run --overwrite "$cfg" output.path="$OUT/$label.h5" output.progress_every=0 "$@" \
    > "$OUT/$label.log"
}

run quickstart_np1 1 configs/quickstart.yaml
run quickstart_np2 2 configs/quickstart.yaml
run logreg1000_10_np1 1 configs/bench_logreg_1000.yaml clients.per_round=10
run logreg1000_10_np2 2 configs/bench_logreg_1000.yaml clients.per_round=10
run logreg1000_100_np1 1 configs/bench_logreg_1000.yaml clients.per_round=100
run logreg1000_100_np2 2 configs/bench_logreg_1000.yaml clients.per_round=100

/usr/bin/python3 - "$OUT" <<'PY'
import glob, json, os, platform, sys
import h5py, numpy as np

out = sys.argv[1]
mem = json.load(open(os.path.join(out, "memory.json")))
cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
rows = []
for label in ["quickstart_np1", "quickstart_np2", "logreg1000_10_np1", "logreg1000_10_np2",
              "logreg1000_100_np1", "logreg1000_100_np2"]:
    with h5py.File(os.path.join(out, label + ".h5"), "r") as f:
        r = f["rounds"]
        n = len(r["round"])
        # Skip the first round (page faults, caches); average the rest.
        sl = slice(1, n) if n > 1 else slice(0, n)
        t = lambda k: float(np.mean(r[k][sl]))
        acc = r["test_accuracy"][()]
        acc = acc[~np.isnan(acc)]
        rows.append(dict(run=label, ranks=int(f.attrs["ranks"]), clients_per_round=int(r["clients"][0]),
                         params=int(f.attrs["num_params"]), rounds=n,
                         round_s=t("time_round"), rounds_per_s=1.0 / t("time_round"),
                         local_max_s=t("time_local_max"), comm_max_s=t("time_comm_max"),
                         aggregate_max_s=t("time_aggregate_max"),
                         eval_max_s=float(np.max(r["time_eval_max"][()])),
                         peak_rss_mib=float(f.attrs["peak_rss_mib_max"]),
                         final_accuracy=float(acc[-1]) if len(acc) else float("nan")))
keys = list(rows[0])
with open("results/bench_spine.csv", "w") as c:
    c.write(",".join(keys) + "\n")
    for row in rows:
        c.write(",".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys) + "\n")
with open("results/bench_spine.md", "w") as m:
    m.write("# Spine benchmark\n\n")
    m.write(f"Machine: {os.cpu_count()} cores ({cpu}), {mem['mem_gib']:.1f} GiB RAM; one-thread memory "
            f"bandwidth read {mem['read_gbs']:.1f} GB/s, triad {mem['triad_gbs']:.1f} GB/s "
            "(`cohort bench memory`).\n\n")
    m.write("Regenerate: `scripts/bench_spine.sh` (Release build). Times are means over rounds 2..n "
            "(round 1 warms caches); phase times are the slowest rank's; eval is the max over "
            "evaluated rounds; memory is the peak RSS of the largest rank.\n\n")
    m.write("| run | ranks | clients/round | params | s/round | rounds/s | local | comm | aggregate | eval | peak MiB/rank | final acc |\n")
    m.write("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        m.write(f"| {r['run']} | {r['ranks']} | {r['clients_per_round']} | {r['params']} | {r['round_s']:.3f} | "
                f"{r['rounds_per_s']:.2f} | {r['local_max_s']:.3f} | {r['comm_max_s']:.4f} | "
                f"{r['aggregate_max_s']:.4f} | {r['eval_max_s']:.3f} | {r['peak_rss_mib']:.0f} | "
                f"{100 * r['final_accuracy']:.2f}% |\n")
print(open("results/bench_spine.md").read())
PY
