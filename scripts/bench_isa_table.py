#!/usr/bin/python3
"""Writes results/bench_isa.md from the JSON files of scripts/bench_isa.sh: for each kernel the
AVX-512 and AVX2 throughput (range over the rounds), the memory bandwidth each run measured, and
the AVX2 / AVX-512 ratio (range of the per-round ratios, each from the two runs of one round)."""
import json
import sys

out_dir, rounds = sys.argv[1], int(sys.argv[2])
ISAS = ("avx512", "avx2")
GOAL = 0.6

# The kernels of the goal (issue: AVX2 paths at >= 60% of AVX-512) and the rows that time them.
AGG = ["cm", "tm", "krum", "multikrum", "bulyan", "gm", "cclip"]
COMP = ["topk ratio=0.01", "qsgd s=4 fixed", "qsgd s=16 fixed", "qsgd s=4 elias",
        "qsgd s=4 bucket=512", "philox (bits only)"]


def load(kind, isa, r):
    return json.load(open(f"{out_dir}/{kind}.{isa}.{r}.json"))


runs = {(kind, isa): [load(kind, isa, r) for r in range(1, rounds + 1)]
        for kind in ("aggregate", "compress") for isa in ISAS}


def rows(kind, isa, r):
    doc = runs[(kind, isa)][r]
    key = "aggregator" if kind == "aggregate" else "compressor"
    return {(x[key], x["d"]): x for x in doc["rows"] if x.get("threads", 1) == 1}


def rng(values, fmt="{:.2f}"):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def bandwidth(kind, isa):
    docs = runs[(kind, isa)]
    return (rng([d["read_gbs"] for d in docs], "{:.1f}"), rng([d["triad_gbs"] for d in docs], "{:.1f}"))


with open("results/bench_isa.md", "w") as t:
    t.write("# AVX2 against AVX-512 on one machine (`scripts/bench_isa.sh`)\n\n")
    t.write(f"Regenerate: `bash scripts/bench_isa.sh` (ROUNDS={rounds}; Release build, one thread). "
            "Each round runs `COHORT_ISA=avx512` then `COHORT_ISA=avx2` of `cohort bench aggregate "
            "--sizes 1e6 --clients 25 --repeats 5` and `cohort bench compress --sizes 1e6,1.1e7 "
            "--repeats 5` (best of 5 repeats per run); ranges are over the rounds, the ratio is "
            "AVX2 / AVX-512 per round, and the goal column (≥ 60%) compares the best AVX2 run with the "
            "best AVX-512 run. Both paths give the same bits (tests); the machine is a "
            "shared 2-core virtual machine, so single runs vary by up to ~30%.\n\n")
    t.write("Memory bandwidth measured by the same runs (64 MB arrays, GB/s):\n\n")
    t.write("| bench | path | read | triad |\n|---|---|---:|---:|\n")
    for kind in ("aggregate", "compress"):
        for isa in ISAS:
            rd, tr = bandwidth(kind, isa)
            t.write(f"| {kind} | {isa} | {rd} | {tr} |\n")
    t.write(f"\n## Aggregators (n = 25, d = 1e6; GB/s of input, krum also GFLOP/s of its Gram "
            f"product)\n\n")
    t.write("| rule | AVX-512 GB/s | AVX2 GB/s | AVX2 / AVX-512 | ≥ 60% |\n|---|---:|---:|---:|---|\n")
    for name in AGG:
        a = [rows("aggregate", "avx512", r)[(name, 1000000)] for r in range(rounds)]
        b = [rows("aggregate", "avx2", r)[(name, 1000000)] for r in range(rounds)]
        ratios = [y["gbs"] / x["gbs"] for x, y in zip(a, b)]
        best = max(y["gbs"] for y in b) / max(x["gbs"] for x in a)
        ok = "yes" if best >= GOAL else "no"
        t.write(f"| {name} | {rng([x['gbs'] for x in a])} | {rng([y['gbs'] for y in b])} | "
                f"{rng(ratios, '{:.0%}')} (best/best {best:.0%}) | {ok} |\n")
        if name == "krum":
            ga = [x["gflops"] for x in a]
            gb = [y["gflops"] for y in b]
            gr = [y / x for x, y in zip(ga, gb)]
            t.write(f"| krum Gram, GFLOP/s | {rng(ga, '{:.1f}')} | {rng(gb, '{:.1f}')} | "
                    f"{rng(gr, '{:.0%}')} (best/best {max(gb) / max(ga):.0%}) | "
                    f"{'yes' if max(gb) / max(ga) >= GOAL else 'no'} |\n")
    t.write("\n## Compressors (GB/s of float32 input for encode + decode; philox: GB/s of "
            "random words)\n\n")
    t.write("| compressor | d | AVX-512 GB/s | AVX2 GB/s | AVX2 / AVX-512 | ≥ 60% |\n"
            "|---|---:|---:|---:|---:|---|\n")
    for d in (1000000, 11000000):
        for name in COMP:
            a = [rows("compress", "avx512", r)[(name, d)] for r in range(rounds)]
            b = [rows("compress", "avx2", r)[(name, d)] for r in range(rounds)]
            ratios = [y["gbs"] / x["gbs"] for x, y in zip(a, b)]
            best = max(y["gbs"] for y in b) / max(x["gbs"] for x in a)
            ok = "yes" if best >= GOAL else "no"
            t.write(f"| {name} | {d:.1e} | {rng([x['gbs'] for x in a])} | "
                    f"{rng([y['gbs'] for y in b])} | {rng(ratios, '{:.0%}')} "
                    f"(best/best {best:.0%}) | {ok} |\n")
    t.write("\nThe Philox generator stays near half: a Philox round needs 8 vector operations per "
            "4 blocks on AVX2 (two 32 x 32 -> 64-bit multiplies, two shifts, four xors) and 6 per "
            "8 blocks on AVX-512 (three-way xor, twice the width), so its AVX2 rate is bound by "
            "the instruction count, not the schedule. QSGD draws one Philox byte per value, so "
            "this costs it little.\n")
    t.write("\nRaw output: `results/bench/isa/` (not committed).\n")
print("wrote results/bench_isa.md")
