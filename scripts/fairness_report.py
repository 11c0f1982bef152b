#!/usr/bin/python3
"""Table and bar plot of the robustness-vs-fairness sweep (configs/sweeps/fairness.yaml).

Usage: scripts/fairness_report.py SWEEP_DIR OUT_DIR

For each aggregator (the sweep's `aggregator` value), over the seeds: the mean client accuracy
(/rounds/client_acc_mean at the last evaluation), the worst-10% client accuracy (the mean of the
lowest 10% of /clients/accuracy, the per-client accuracies of the last evaluation), the 10th
percentile and minimum (/rounds/client_acc_p10, _min), the spread (client_acc_std), the test
accuracy of the global model on the whole test set, and the mean and p10 averaged over the last
4 evaluations. Writes OUT_DIR/table.md, OUT_DIR/table.csv
and OUT_DIR/fairness.png (bars: mean and worst-10%, +- std over seeds), and OUT_DIR/curves.png
(mean and 10th-percentile client accuracy at each evaluation, averaged over the seeds). Runs missing or not
completed are listed and left out. Uses h5py, numpy, matplotlib (Debian's /usr/bin/python3).
"""
import csv
import math
import os
import re
import sys
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(value):
    """'{name: krum, f: 2}' -> 'krum f=2'."""
    kv = re.findall(r"(\w+):\s*([^,}]+)", value)
    return " ".join([kv[0][1].strip()] + [f"{k}={v.strip()}" for k, v in kv[1:]]) if kv else value


def last_finite(a):
    a = np.asarray(a, dtype=float)
    ok = np.flatnonzero(np.isfinite(a))
    return float(a[ok[-1]]) if ok.size else math.nan


def last_k(a, k=4):
    """Mean of the last k evaluations (less snapshot noise than the last one alone)."""
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    return float(a[-k:].mean()) if a.size else math.nan


def read(path):
    with h5py.File(path, "r") as f:
        if f.attrs.get("status") not in ("completed", b"completed"):
            return None
        r = f["rounds"]
        acc = np.sort(np.asarray(f["clients/accuracy"][()], dtype=float))
        acc = acc[np.isfinite(acc)]
        k = max(1, int(math.ceil(0.1 * acc.size)))
        return {"mean": last_finite(r["client_acc_mean"][()]),
                "worst10": float(acc[:k].mean()),
                "p10": last_finite(r["client_acc_p10"][()]),
                "min": last_finite(r["client_acc_min"][()]),
                "std": last_finite(r["client_acc_std"][()]),
                "test_acc": last_finite(r["test_accuracy"][()]),
                "mean_last4": last_k(r["client_acc_mean"][()]),
                "p10_last4": last_k(r["client_acc_p10"][()])}


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sweep, out = Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    groups, curves, missing = OrderedDict(), {}, []
    for run in csv.DictReader(open(sweep / "manifest.csv")):
        path = Path(run["results"])
        row = read(path) if path.is_file() else None
        if row is None:
            missing.append(run["run_id"])
            continue
        groups.setdefault(label(run["aggregator"]), []).append(row)
        with h5py.File(path, "r") as f:
            r = f["rounds"]
            ok = np.isfinite(r["client_acc_mean"][()])
            curves.setdefault(label(run["aggregator"]), []).append(
                (r["round"][()][ok], r["client_acc_mean"][()][ok], r["client_acc_p10"][()][ok]))
    keys = ["mean", "worst10", "p10", "min", "std", "test_acc", "mean_last4", "p10_last4"]
    stat = OrderedDict()
    for g, rows in groups.items():
        stat[g] = (len(rows), {k: (float(np.mean([r[k] for r in rows])),
                                   float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0)
                               for k in keys})
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["aggregator", "seeds"] + [f"{k}_{s}" for k in keys for s in ("mean", "std")])
        for g, (n, c) in stat.items():
            w.writerow([g, n] + [f"{x:.4f}" for k in keys for x in c[k]])
    base = stat.get("mean", (0, {k: (math.nan, 0) for k in keys}))[1]
    with open(out / "table.md", "w") as t:
        n = max((v[0] for v in stat.values()), default=0)
        t.write(f"Client accuracy (%) at the last evaluation, mean ± std over {n} seeds; "
                "Δ: difference of the seed means to `mean` (points).\n\n")
        t.write("| aggregator | mean client acc | Δ mean | worst-10% client acc | Δ worst-10% | "
                "p10 | min | std across clients | global test acc | mean, last 4 evals | p10, last 4 evals |\n")
        t.write("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for g, (n, c) in stat.items():
            pm = lambda k: f"{100 * c[k][0]:.1f} ± {100 * c[k][1]:.1f}"  # noqa: E731
            t.write(f"| {g} | {pm('mean')} | {100 * (c['mean'][0] - base['mean'][0]):+.1f} | "
                    f"{pm('worst10')} | {100 * (c['worst10'][0] - base['worst10'][0]):+.1f} | "
                    f"{pm('p10')} | {pm('min')} | {100 * c['std'][0]:.1f} | {pm('test_acc')} | "
                    f"{pm('mean_last4')} | {pm('p10_last4')} |\n")
    print(open(out / "table.md").read())

    fig, ax = plt.subplots(figsize=(11, 4.5))
    names = list(stat)
    x = np.arange(len(names))
    for i, (k, title) in enumerate([("mean", "mean client accuracy"),
                                    ("worst10", "worst-10% client accuracy")]):
        mu = [100 * stat[g][1][k][0] for g in names]
        sd = [100 * stat[g][1][k][1] for g in names]
        bars = ax.bar(x + (i - 0.5) * 0.38, mu, 0.38, yerr=sd, capsize=3, label=title)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylabel("accuracy on the clients' own test sets (%)")
    low = min(100 * (stat[g][1][k][0] - stat[g][1][k][1]) for g in names for k in ("mean", "worst10"))
    ax.set_ylim(max(0, 10 * math.floor(low / 10) - 10), 100)  # bars start near the data
    ax.set_title("Fashion-MNIST, logreg, 100 clients, Dirichlet 0.3, no attack")
    ax.legend(loc="upper right", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "fairness.png", dpi=120)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for g in names:
        runs = curves[g]
        n = min(len(c[0]) for c in runs)
        rounds = runs[0][0][:n]
        for ax, i in ((axes[0], 1), (axes[1], 2)):
            ax.plot(rounds, 100 * np.mean([c[i][:n] for c in runs], axis=0), marker=".", label=g)
    for ax, title in zip(axes, ["mean client accuracy", "10th-percentile client accuracy"]):
        ax.set_xlabel("round")
        ax.set_ylabel("%")
        ax.set_title(title + " (mean over seeds)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    print(f"wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'fairness.png'}, {out / 'curves.png'}")
    if missing:
        print(f"left out ({len(missing)} missing or not completed): " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
