#!/usr/bin/python3
"""Writes results/bench_powersgd.md from the JSON files of scripts/bench_powersgd.sh: cohort's
fused PowerSGD step with error feedback against the PyTorch hook's steps (the peer). Each row
keeps its best over the rounds; the raw output of every round follows the table."""
import glob
import json
import re

B = "results/bench"


def rounds(name):
    """[(round, json, raw text)] of results/bench/<name>.<round>.json, in round order."""
    out = []
    for path in glob.glob(f"{B}/{name}.*.json"):
        m = re.fullmatch(rf"{re.escape(B)}/{re.escape(name)}\.(\d+)\.json", path)
        if m:
            out.append((int(m.group(1)), json.load(open(path)),
                        open(path[:-5] + ".txt").read().rstrip()))
    return sorted(out, key=lambda x: x[0])


def best_rows(runs, key_of, value="gbs"):
    best = {}
    for _, js, _ in runs:
        for row in js["rows"]:
            k = key_of(row)
            if k is not None:
                best[k] = max(best.get(k, 0.0), row[value])
    return best


def ef_key(kind):
    """(rows, cols, r) of the 'powersgd ef <kind> r=R RxC' rows of cohort's output."""
    def key(row):
        parts = row["compressor"].split()
        if parts[:3] != ["powersgd", "ef", kind]:
            return None
        rows, cols = (int(x) for x in parts[4].split("x"))
        return rows, cols, int(parts[3][2:])
    return key


def peer_key(row):
    return row["rows"], row["cols"], row["rank"]


cohort = rounds("powersgd")
avx2 = rounds("powersgd_avx2")
peers = [(label, rounds(name)) for label, name in [
    ("torch, default BLAS", "powersgd_peer_default_blas"),
    ("torch + OpenBLAS", "powersgd_peer_openblas"),
    ("torch + OpenBLAS, QR", "powersgd_peer_openblas_qr"),
]]
peers = [(label, runs) for label, runs in peers if runs]

fused, steps = best_rows(cohort, ef_key("fused")), best_rows(cohort, ef_key("steps"))
fused_avx2 = best_rows(avx2, ef_key("fused"))
peer_best = [best_rows(runs, peer_key) for _, runs in peers]
first = cohort[0][1]

with open("results/bench_powersgd.md", "w") as t:
    t.write("# PowerSGD with error feedback against the PyTorch hook (`cohort bench compress "
            "--powersgd-only`)\n\n")
    t.write(f"Regenerate: `OPENBLAS_DIR=... bash scripts/bench_powersgd.sh` (Release build, one "
            f"thread; the script's header says how to unpack OpenBLAS without installing it). "
            f"{len(cohort)} alternating rounds of cohort (best of 20 calls) and the peer (best of "
            f"10); each cell is its best round. Single runs of the same row varied by up to "
            f"~30%.\n\n")
    bw = ", ".join(f"read {js['read_gbs']:.1f} / triad {js['triad_gbs']:.1f}" for _, js, _ in cohort)
    t.write(f"Memory bandwidth measured by the same program, per round (GB/s): {bw}. PowerSGD "
            f"kernels: {first['powersgd_isa']}"
            + (f" (and {avx2[0][1]['powersgd_isa']}, forced with COHORT_ISA)" if avx2 else "")
            + ".\n\n")
    t.write("What is timed, per call, on one m × n float32 layer of one client with error memory "
            "e and warm start: p = u + e, P = p Q, Gram-Schmidt, Q = pᵀ P̂, the decoded p̂ = P̂ Qᵀ "
            "and e = p − p̂. cohort *fused*: the compressor's own step (Note [PowerSGD passes] in "
            "`src/compress/powersgd.cpp`: three passes over the layer); cohort *steps*: the same "
            "kernels run as the definition, step by step. The peer "
            "(`scripts/bench_powersgd_peer.py`) runs the hook's steps with torch operations: "
            "M += e, a copy of M, P = M Q, orthogonalisation, Q = Mᵀ P, M = P Qᵀ, e = copy − M, "
            "without the all-reduces. GB/s = 4 m n bytes / time.\n\n")
    head = "| layer | r | cohort fused | cohort steps |"
    sep = "|---|---:|---:|---:|"
    if fused_avx2:
        head += " cohort fused, AVX2 |"
        sep += "---:|"
    for label, _ in peers:
        head += f" {label} |"
        sep += "---:|"
    head += " fused / best peer | ≥ 2× |"
    sep += "---:|---|"
    t.write(head + "\n" + sep + "\n")
    met_all, worst = True, float("inf")
    for key in sorted(fused, key=lambda k: (k[0] * k[1], k[2])):
        rows, cols, r = key
        line = f"| {rows} × {cols} | {r} | {fused[key]:.2f} | {steps.get(key, float('nan')):.2f} |"
        if fused_avx2:
            line += f" {fused_avx2.get(key, float('nan')):.2f} |"
        best = 0.0
        for g in peer_best:
            v = g.get(key)
            line += f" {v:.2f} |" if v is not None else " |"
            best = max(best, v or 0.0)
        ratio = fused[key] / best if best > 0 else float("nan")
        worst = min(worst, ratio)
        met_all = met_all and ratio >= 2.0
        line += f" {ratio:.1f}× | {'met' if ratio >= 2.0 else '**not met**'} |"
        t.write(line + "\n")
    t.write(f"\n≥ 2× the best peer at every shape and rank: **{'met' if met_all else 'not met'}** "
            f"(smallest ratio {worst:.1f}×).\n\n")
    names = {r["compressor"]: r for r in first["rows"]}
    pc, pr = names.get("powersgd per_client r=4"), names.get("powersgd M*Q + M^T*P only")
    if pc and pr:
        enc = pc["encode_ms"] + pc["decode_ms"]
        prod = pr["encode_ms"] + pr["decode_ms"]
        t.write(f"Without error feedback (rank 4, 512 × 4608, cold start, round 1): encode + "
                f"decode {enc:.2f} ms ({pc['gbs']:.2f} GB/s), its two products alone "
                f"{prod:.2f} ms ({pr['gbs']:.2f} GB/s): {enc / prod:.2f}×.\n\n")
    t.write("## Notes\n\n")
    t.write("- Over repeated runs of this script the ratios moved by up to ~0.5× (the peer's and "
            "cohort's best rounds do not coincide); the 512 × 4608, r = 8 cell ranged from 1.6× to "
            "2.2×. There the step is bound by fused multiply-adds as much as by memory (3r per "
            "value, r in each pass; pass 2, which reads the layer once, takes about twice as long "
            "at r = 8 as at r = 1), while the peer's three 9.4 MB arrays stay in the last-level "
            "cache and its time hardly depends on r.\n")
    t.write("- *cohort steps* is the definition run step by step with the new kernels. With the "
            "Eigen products they replaced (eea34c0), the same steps, timed once the same way, ran "
            "at 0.45–0.92 GB/s (512 × 4608) and 0.52–0.84 GB/s (3125 × 3520), r = 8 to r = 1.\n")
    t.write("- Without error feedback the ratio of encode + decode to the two products grew "
            "(1.51× in the last recorded `bench_compress.md`, 5.79 ms against 3.84 ms) because "
            "the products became ~4× faster: encode + decode now also spends ~0.4 ms drawing the "
            "cold start's Q (cols × r normals) and writes the decoded layer.\n")
    t.write("- The peer: Debian's torch calls the reference BLAS that libblas.so.3 resolves to by "
            "default (*torch, default BLAS*); with OpenBLAS its products are several times faster "
            "(P = M Q at 3125 × 3520, r = 4: 38 ms against 5.6 ms). The "
            "hook orthogonalises with QR for float32 at r > 2; both are shown, and the best of "
            "all peer columns counts. GRACE, the other peer the issue names, was not timed (it "
            "is not packaged for Debian); the issue's own measurement had it 1.2× faster than the "
            "hook (2.20 against 1.81 GB/s).\n\n")
    t.write("## Full output\n\n")
    for name, runs in [("powersgd", cohort), ("powersgd_avx2", avx2)] + [
            (label, runs) for label, runs in peers]:
        for rnd, _, text in runs:
            t.write(f"{name}, round {rnd}:\n\n```\n{text}\n```\n\n")
    if peers:
        t.write("torch configuration (`torch.__config__.show()`):\n\n```\n"
                + peers[0][1][0][1]["config"].rstrip() + "\n```\n")
