#!/usr/bin/python3
"""FedAvg Table 2 in our terms: rounds to a target accuracy from the runs of repro_fedavg.sh.

Usage: scripts/repro_fedavg_report.py H5_DIR OUT_DIR MODEL [TARGETS]

Reads every H5_DIR/{split}_E{E}_B{B}_lr{lr}_seed{s}.h5 and writes OUT_DIR/runs_MODEL.csv (one
row per run), OUT_DIR/table_MODEL.md (the paper's table: per (E, B) row and split, rounds to the
target as mean ± std over seeds, at the learning rate with the fewest mean rounds, and the
speed-up over FedSGD, E = 1 and B = infinity, beside the paper's MNIST numbers) and
OUT_DIR/rounds_MODEL.png (best-so-far test accuracy against rounds, as the paper's Figure 2).
A run counts at every target up to the one it ran to (eval.stop_at_accuracy): the first round
whose evaluation reaches it. TARGETS (comma-separated accuracies) adds columns for those targets
beside the ones the runs stopped at (a run that stopped below a target counts as not reaching
it).
"""
import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

N_PER_CLIENT = 600
# The paper's Table 2 (MNIST; CNN to 99%, 2NN to 97%): (E, B) -> (IID rounds, non-IID rounds).
PAPER = {
    "cnn": (0.99, {(1, "inf"): (626, 483), (5, "inf"): (179, 1000), (1, "50"): (65, 600),
                   (20, "inf"): (234, 672), (1, "10"): (34, 350), (5, "50"): (29, 334),
                   (20, "50"): (32, 426), (5, "10"): (20, 229), (20, "10"): (18, 173)}),
    "2nn": (0.97, {(1, "inf"): (1455, 4278), (10, "inf"): (1474, 3275), (1, "50"): (1658, 2752),
                   (20, "inf"): (1005, 2815), (1, "10"): (1181, 2156), (10, "50"): (1100, 1608),
                   (20, "50"): (984, 1532), (10, "10"): (1037, 1408), (20, "10"): (1116, 1320)}),
}
NAME = re.compile(r"(iid|noniid)_E(\d+)_B(inf|\d+)_lr([0-9.e-]+)_seed(\d+)\.h5$")
SPLITS = {"iid": "IID", "noniid": "non-IID"}


def updates(e, b):
    """u = E n / B, the local steps a round (B = infinity: one step an epoch)."""
    return e if b == "inf" else e * N_PER_CLIENT // int(b)


def read(path):
    m = NAME.search(path.name)
    if not m:
        return None
    with h5py.File(path, "r") as f:
        a = f.attrs
        if "rounds/test_accuracy" not in f:
            return None
        status = a["status"].decode() if isinstance(a["status"], bytes) else str(a["status"])
        if status not in ("completed", "diverged"):
            return None  # still running, or stopped by a signal: not a result yet
        return dict(split=m[1], E=int(m[2]), B=m[3], lr=float(m[4]), seed=int(m[5]),
                    acc=f["rounds/test_accuracy"][()], rounds=f["rounds/round"][()],
                    status=status,
                    stop=float(a.get("stop_at_accuracy", 0.0)), wall=float(a["wall_seconds"]),
                    rounds_done=int(a["rounds_done"]))


def best_accuracy(run):
    acc = np.asarray(run["acc"], dtype=float)
    return f"{np.nanmax(acc):.4f}" if np.any(~np.isnan(acc)) else "nan"


def rounds_to(run, target):
    """First round whose evaluation reaches target; NaN if the run never did (or stopped below)."""
    if run["stop"] and target > run["stop"] + 1e-12:
        return math.nan
    hits = np.flatnonzero(np.nan_to_num(run["acc"], nan=-1.0) >= target)
    return float(run["rounds"][hits[0]]) if hits.size else math.nan


def fmt_rounds(vals):
    vals = np.asarray(vals, dtype=float)
    ok = vals[~np.isnan(vals)]
    if ok.size < vals.size:
        return f"not reached ({ok.size} of {vals.size} seeds)", math.nan
    mean = float(ok.mean())
    std = float(ok.std(ddof=1)) if ok.size > 1 else 0.0
    return f"{mean:.0f} ± {std:.0f}", mean


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    h5, out, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    runs = [r for p in sorted(h5.glob("*.h5")) if (r := read(p))]
    if not runs:
        sys.exit(f"no finished runs in {h5}")
    with open(out / f"runs_{model}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "E", "B", "u", "lr", "seed", "stop_at_accuracy", "rounds_to_stop",
                    "rounds_done", "status", "best_accuracy", "wall_seconds"])
        for r in sorted(runs, key=lambda r: (r["split"], r["E"], r["B"], r["lr"], r["seed"])):
            w.writerow([r["split"], r["E"], r["B"], updates(r["E"], r["B"]), r["lr"], r["seed"],
                        r["stop"], rounds_to(r, r["stop"]) if r["stop"] else "",
                        r["rounds_done"], r["status"], best_accuracy(r),
                        f"{r['wall']:.1f}"])
    # Targets: each split's lowest stop target, every lower one in use, and the optional one.
    targets = sorted({r["stop"] for r in runs if r["stop"]} |
                     ({float(x) for x in sys.argv[4].split(",") if x} if len(sys.argv) == 5
                      else set()), reverse=True)
    groups = defaultdict(list)  # (split, E, B, lr) -> runs
    for r in runs:
        groups[(r["split"], r["E"], r["B"], r["lr"])].append(r)
    splits = [s for s in SPLITS if any(k[0] == s for k in groups)]
    rows = sorted({(k[1], k[2]) for k in groups}, key=lambda eb: (updates(*eb), eb[0]))
    paper_target, paper = PAPER[model]
    lines = [f"# FedAvg Table 2, {model.upper()} on Fashion-MNIST: rounds to a target accuracy", "",
             "Rounds until the global model's test accuracy first reaches the target (mean ± std "
             "over seeds; the learning rate with the fewest mean rounds where several ran), and "
             "in brackets the speed-up over FedSGD (E = 1, B = ∞) of the same split. u = E·600/B "
             f"local updates a round. Paper: MNIST, target {paper_target:.0%}, its Table 2.", ""]
    wall = sum(r["wall"] for r in runs)
    chosen = {}
    for split in splits:
        split_runs = [r for r in runs if r["split"] == split]
        reach = max(r["stop"] for r in split_runs)
        ts = [t for t in targets if t <= reach + 1e-12]
        head = ["E", "B", "u"] + [f"{SPLITS[split]} to {t:.0%}" for t in ts] + ["lr", "seeds",
                                                                                f"paper {SPLITS[split]}"]
        lines += [f"## {SPLITS[split]}", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        def complete_lrs(e, b):
            """The learning rates of a row that ran on the most seeds (a grid still running
            compares only like with like)."""
            lrs = sorted({k[3] for k in groups if k[:3] == (split, e, b)})
            most = max((len(groups[(split, e, b, lr)]) for lr in lrs), default=0)
            return [lr for lr in lrs if len(groups[(split, e, b, lr)]) == most]

        base = {}
        for t in ts:
            best = None
            for lr in complete_lrs(1, "inf"):
                _, m = fmt_rounds([rounds_to(r, t) for r in groups[(split, 1, "inf", lr)]])
                if not math.isnan(m) and (best is None or m < best):
                    best = m
            base[t] = best
        pcol = 0 if split == "iid" else 1
        for e, b in rows:
            lrs = complete_lrs(e, b)
            if not lrs:
                continue
            cells, used, seeds = [], set(), 0
            for t in ts:
                best = None
                for lr in lrs:
                    txt, m = fmt_rounds([rounds_to(r, t) for r in groups[(split, e, b, lr)]])
                    key = math.inf if math.isnan(m) else m
                    if best is None or key < best[0]:
                        best = (key, txt, lr, len(groups[(split, e, b, lr)]))
                key, txt, lr, n = best
                if t == ts[0]:
                    chosen[(split, e, b)] = lr  # what the figure draws: the best at the top target
                if math.isfinite(key) and base[t]:
                    txt += f" ({base[t] / key:.1f}×)"
                cells.append(txt)
                used.add(lr)
                seeds = max(seeds, n)
            p = paper.get((e, b))
            ptxt = "—" if p is None else (f"{p[pcol]}" + ("" if (e, b) == (1, "inf") else
                                                         f" ({paper[(1, 'inf')][pcol] / p[pcol]:.1f}×)"))
            name = "FedSGD" if (e, b) == (1, "inf") else ""
            lines.append("| " + " | ".join([f"{e} {name}".strip(), "∞" if b == "inf" else b,
                                             str(updates(e, b))] + cells +
                                            [", ".join(f"{x:g}" for x in sorted(used)), str(seeds),
                                             ptxt]) + " |")
        lines.append("")
    lines.append(f"{len(runs)} runs, {wall / 60:.1f} minutes of run time in all.")
    (out / f"table_{model}.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4.2), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, split in zip(axes[0], splits):
        srows = [eb for eb in rows if any(k[:3] == (split,) + eb for k in groups)]
        for i, (e, b) in enumerate(srows):
            color = "black" if (e, b) == (1, "inf") else cmap(i / max(1, len(srows) - 1))
            for j, r in enumerate(sorted((r for r in runs if (r["split"], r["E"], r["B"]) ==
                                          (split, e, b) and r["lr"] == chosen.get((split, e, b))),
                                         key=lambda r: r["seed"])):
                acc = np.fmax.accumulate(np.nan_to_num(r["acc"], nan=0.0))
                ax.plot(r["rounds"], acc, color=color, lw=1.2 if j == 0 else 0.6,
                        alpha=1 if j == 0 else 0.5,
                        label=(f"E={e}, B={'∞' if b == 'inf' else b}"
                               f"{' (FedSGD)' if (e, b) == (1, 'inf') else ''}") if j == 0 else None)
        reach = max(r["stop"] for r in runs if r["split"] == split) or max(targets)
        for t in targets:
            if t <= reach + 1e-12:
                ax.axhline(t, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(0.6, reach + 0.03)
        ax.set_xlabel("communication rounds")
        ax.set_ylabel("best test accuracy so far")
        ax.set_title(f"{model.upper()}, {SPLITS[split]} (Fashion-MNIST; each row at its best lr)")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / f"rounds_{model}.png", dpi=110)
    print(f"wrote {out}/table_{model}.md, runs_{model}.csv, rounds_{model}.png ({len(runs)} runs)")


if __name__ == "__main__":
    main()
