#!/usr/bin/python3
"""Tables and figure of scripts/repro_bucketing.sh: final test accuracy (iteration 600) per rule,
attack, worker momentum and bucketing, mean +- std over seeds, beside the reference code's
published MNIST numbers (reference_exp3.csv), and accuracy against iterations in the paper's grid
(rows: rules, columns: attacks; s = 0 and s = 2 as two colours, momentum as line style).

Usage: repro_bucketing_report.py H5_DIR OUT_DIR MODEL

Every run in H5_DIR counts, whichever MODE (or narrowed grid) made it.
"""
import csv
import glob
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

h5dir, out, model = sys.argv[1:4]
NAME = re.compile(r"^(\w+?)_(\w+?)_b([0-9.]+)_s(\d+)_seed(\d+)\.h5$")
RULES = ["mean", "cm", "krum", "gm", "cclip"]
ATTACKS = ["none", "signflip", "labelflip", "mimic", "ipm", "alie"]
REF_RULE = {"cm": "cm", "krum": "krum", "gm": "rfa", "cclip": "cclip"}

runs = []
for p in sorted(glob.glob(f"{h5dir}/*.h5")):
    m = NAME.match(os.path.basename(p))
    if not m:
        continue
    agg, atk, beta, s, seed = m.groups()
    try:
        with h5py.File(p, "r") as f:
            st = str(f.attrs["status"])
            acc = f["rounds/test_accuracy"][()]
            it = f["rounds/round"][()]
            wall = float(f.attrs.get("wall_seconds", float("nan")))
    except (OSError, KeyError):
        continue
    if st not in ("completed", "diverged"):
        continue  # still running, or stopped early: not counted
    ok = ~np.isnan(acc)
    final = float(acc[ok][-1]) * 100 if st == "completed" and ok.any() else float("nan")
    runs.append(dict(agg=agg, attack=atk, beta=beta, s=s, seed=seed, status=st, final=final,
                     best=float(np.nanmax(acc)) * 100 if ok.any() else float("nan"), wall=wall,
                     it=it[ok], acc=acc[ok] * 100))

with open(f"{out}/runs_{model}.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["aggregator", "attack", "beta", "bucketing", "seed", "status", "final_accuracy",
                "best_accuracy", "wall_seconds"])
    for r in runs:
        w.writerow([r["agg"], r["attack"], r["beta"], r["s"], r["seed"], r["status"],
                    f"{r['final']:.2f}", f"{r['best']:.2f}", f"{r['wall']:.0f}"])

ref = {}
ref_path = f"{out}/reference_exp3.csv"
if os.path.exists(ref_path):
    for r in csv.DictReader(open(ref_path)):
        ref[(r["aggregator"], r["attack"], r["beta"], r["bucketing"])] = (float(r["mean"]), float(r["std"]))


def summary(vals):
    v = np.array(vals)
    if len(v) == 0:
        return "–", np.nan
    if np.isnan(v).all():
        return f"diverged ({len(v)}/{len(v)})", np.nan
    good = v[~np.isnan(v)]
    txt = f"{good.mean():.1f}" + (f" ± {good.std(ddof=1):.1f}" if len(good) > 1 else "")
    if len(good) < len(v):
        txt += f" ({len(v) - len(good)} diverged)"
    return txt, good.mean()


groups = {}
for r in runs:
    groups.setdefault((r["agg"], r["attack"], r["beta"]), {}).setdefault(r["s"], []).append(r["final"])
lines = [f"Final test accuracy (%) after 600 iterations, {model} on Fashion-MNIST, mean ± std over "
         "the seeds run (n); the reference code's published MNIST numbers (3 seeds) beside them.",
         "",
         "| rule | attack | momentum | ours s = 0 | ours s = 2 | ours s2 − s0 | reference s = 0 | "
         "reference s = 2 | reference s2 − s0 | n |",
         "|---|---|---|---|---|---|---|---|---|---|"]
order = lambda k: (RULES.index(k[0]) if k[0] in RULES else 99, ATTACKS.index(k[1]) if k[1] in ATTACKS else 99, k[2])
for key in sorted(groups, key=order):
    agg, atk, beta = key
    cell = groups[key]
    t0, m0 = summary(cell.get("0", []))
    t2, m2 = summary(cell.get("2", []))
    d = f"{m2 - m0:+.1f}" if not (np.isnan(m0) or np.isnan(m2)) else "–"
    rr = REF_RULE.get(agg)
    r0 = ref.get((rr, atk, beta, "0")) if rr else None
    r2 = ref.get((rr, atk, beta, "2")) if rr else None
    f = lambda x: "–" if x is None else f"{x[0]:.1f} ± {x[1]:.1f}"
    rd = f"{r2[0] - r0[0]:+.1f}" if r0 and r2 else "–"
    n = max(len(cell.get("0", [])), len(cell.get("2", [])))
    lines.append(f"| {agg} | {atk} | {beta} | {t0} | {t2} | {d} | {f(r0)} | {f(r2)} | {rd} | {n} |")
walls = [r["wall"] for r in runs if not np.isnan(r["wall"])]
if walls:
    lines += ["", f"{len(walls)} runs, {sum(walls) / 60:.0f} minutes of run time in all "
              f"({np.mean(walls):.0f} s per run)."]
open(f"{out}/table_{model}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

aggs = [a for a in RULES if any(r["agg"] == a for r in runs)]
atks = [a for a in ATTACKS if any(r["attack"] == a for r in runs)]
if aggs and atks:
    fig, axes = plt.subplots(len(aggs), len(atks), figsize=(max(5.0, 2.6 * len(atks)), 1.9 * len(aggs) + 0.4),
                             sharex=True, sharey=True, squeeze=False)
    colours = {"0": "tab:red", "2": "tab:blue"}
    styles = {"0": ":", "0.9": "-"}
    for i, agg in enumerate(aggs):
        for j, atk in enumerate(atks):
            ax = axes[i][j]
            for (s, beta) in sorted({(r["s"], r["beta"]) for r in runs}):
                curves = [r for r in runs if (r["agg"], r["attack"], r["s"], r["beta"]) == (agg, atk, s, beta)]
                if not curves:
                    continue
                n = min(len(c["it"]) for c in curves)
                y = np.mean([c["acc"][:n] for c in curves], axis=0)
                ax.plot(curves[0]["it"][:n], y, color=colours.get(s, "k"), ls=styles.get(beta, "--"),
                        label=f"s={s}, β={beta}")
            ax.set_ylim(0, 100)
            ax.set_xlim(0, 600)
            if i == 0:
                ax.set_title(atk)
            if j == 0:
                ax.set_ylabel(f"{agg}\naccuracy (%)")
            if i == len(aggs) - 1:
                ax.set_xlabel("iterations")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            h, l = ax.get_legend_handles_labels()
            if len(h) > len(handles):
                handles, labels = h, l
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(f"{out}/accuracy_{model}.png", dpi=110)
