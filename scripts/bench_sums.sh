#!/usr/bin/env bash
# The deterministic message sums (Note [Deterministic sums]) beside their peers, recorded in
# results/bench_sums.md:
#  - `cohort bench sum`: adding a message into the sum and reading it, on every ISA path the CPU
#    has (COHORT_ISA-style forcing inside the benchmark), beside float32 sums and the former
#    128-bit sums;
#  - numpy: adding a float32 message into a float32 accumulator, and np.mean over n messages;
#  - `cohort bench exchange` at 2 ranks: the reduce plan's exchange, exact and float, against a
#    raw MPI_Allreduce of the same float32 vector.
# About 3 minutes on 2 cores; needs about 1.5 GB of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
OUT=results/bench
mkdir -p "$OUT"
"$COHORT" bench sum --sizes 1e5,1e6,1.1e7 --repeats 5 --json "$OUT/sum.json" | tee "$OUT/sum.txt"
/usr/bin/python3 - "$OUT/numpy_sum.json" <<'PY' | tee "$OUT/numpy_sum.txt"
import json, sys, time
import numpy as np
rows = []
for d in (100_000, 1_000_000, 11_000_000):
    rng = np.random.default_rng(1)
    m = (0.01 * rng.standard_normal((8, d))).astype(np.float32)
    acc = np.zeros(d, np.float32)
    best_add = best_mean = 1e30
    for _ in range(5):
        acc[:] = 0
        t0 = time.perf_counter()
        for v in m:
            np.add(acc, v, out=acc)
        best_add = min(best_add, (time.perf_counter() - t0) / len(m))
        t0 = time.perf_counter()
        m.mean(axis=0)
        best_mean = min(best_mean, time.perf_counter() - t0)
    rows.append({"d": d, "add_ms": best_add * 1e3, "add_gbs": 4 * d / best_add / 1e9,
                 "mean_ms": best_mean * 1e3, "mean_gbs": 4 * d * len(m) / best_mean / 1e9})
    print(f"numpy d={d}: add {rows[-1]['add_gbs']:.2f} GB/s, mean of 8 {rows[-1]['mean_gbs']:.2f} GB/s")
json.dump({"numpy": np.__version__, "rows": rows}, open(sys.argv[1], "w"))
PY
for d in 1e6 1.1e7; do
  "$COHORT" bench exchange --size "$d" --np 2 --repeats 5 --json "$OUT/exchange_$d.json" \
    | tee "$OUT/exchange_$d.txt"
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/sum.json"))
npy = json.load(open(f"{out}/numpy_sum.json"))
lines = ["# Deterministic message sums", "",
         "Regenerate with `bash scripts/bench_sums.sh` (one thread per process; the exchange at 2 ranks).",
         f"CPU paths up to **{s['cpu_isa']}**; memory bandwidth measured in the same run: read "
         f"{s['read_gbs']:.1f} GB/s, triad {s['triad_gbs']:.1f} GB/s (one thread). Adding a message "
         "into the 8-byte sum moves 20 bytes per value (4 read, 8 read, 8 written), so memory allows "
         f"about {s['read_gbs'] / 5:.1f} GB/s of message.", "",
         "## Adding one weighted float32 message (GB/s of message) and reading the sum", "",
         "| path | d | add ms | add GB/s | read ms | read GB/s (words) |", "|---|---:|---:|---:|---:|---:|"]
for r in s["rows"]:
    lines.append(f"| {r['path']} | {r['d']:.0e} | {r['add_ms']:.3f} | {r['add_gbs']:.2f} | {r['read_ms']:.3f} | {r['read_gbs']:.2f} |")
lines += ["", f"numpy {npy['numpy']} (float32, one thread):", "",
          "| d | np.add into an accumulator, GB/s of message | np.mean of 8 messages, GB/s |", "|---:|---:|---:|"]
for r in npy["rows"]:
    lines.append(f"| {r['d']:.0e} | {r['add_gbs']:.2f} | {r['mean_gbs']:.2f} |")
lines += ["", "## The reduce plan's exchange at 2 ranks (slowest rank per phase, best of 5)", "",
          "| d | raw MPI_Allreduce float32 ms | exact: add / all-reduce / read ms | exact x raw | float (comm.sum float) ms | float x raw |",
          "|---:|---:|---:|---:|---:|---:|"]
for d in ("1e6", "1.1e7"):
    x = json.load(open(f"{out}/exchange_{d}.json"))
    lines.append(f"| {x['d']:.1e} | {x['raw_ms']:.2f} | {x['exact_add_ms']:.2f} / {x['exact_reduce_ms']:.2f} / "
                 f"{x['exact_read_ms']:.2f} | {x['exact_ms'] / x['raw_ms']:.2f} | {x['float_ms']:.2f} | {x['float_ms'] / x['raw_ms']:.2f} |")
open("results/bench_sums.md", "w").write("\n".join(lines) + "\n")
print("wrote results/bench_sums.md")
PY
