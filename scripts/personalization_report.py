#!/usr/bin/python3
"""Tables and the crossover plot of the personalization sweep (configs/sweeps/personalization.yaml).

Usage: scripts/personalization_report.py SWEEP_DIR OUT_DIR [TITLE]

Reads SWEEP_DIR/manifest.csv and every run's results file; for each (alpha, method) takes, over
the seeds, the mean and sample std of the last evaluation's client accuracies: mean
(/rounds/client_acc_mean), 10th percentile (/rounds/client_acc_p10), worst-10% (the mean of the
lowest 10% of /clients/accuracy) and, for methods with personal models, the global model's mean
on the same clients (/rounds/global_client_acc_mean). Writes OUT_DIR/table.csv, OUT_DIR/table.md
and OUT_DIR/crossover.png (mean and p10 against alpha, log x axis, one line per method, +- std
bands; TITLE above it). Runs that are missing or not completed are listed and left out. Uses h5py, numpy and
matplotlib (Debian's /usr/bin/python3).
"""
import csv
import math
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["local", "none (fedavg)", "finetune", "ditto λ=0.1", "ditto λ=1", "ifca k=2", "ifca k=3"]


def method(value):
    """'{name: ditto, lambda: 0.1}' -> 'ditto λ=0.1'."""
    kv = dict(re.findall(r"(\w+):\s*([^,}]+)", value))
    name = kv.get("name", value).strip()
    if name == "none":
        return "none (fedavg)"
    if name == "ditto":
        return f"ditto λ={kv.get('lambda', '0.1').strip()}"
    if name == "ifca":
        return f"ifca k={kv.get('k', '2').strip()}"
    return name


def last_finite(a):
    a = np.asarray(a, dtype=float)
    ok = np.flatnonzero(np.isfinite(a))
    return float(a[ok[-1]]) if ok.size else math.nan


def worst10(acc):
    acc = np.sort(np.asarray(acc, dtype=float)[np.isfinite(acc)])
    if not acc.size:
        return math.nan
    return float(acc[: max(1, int(math.ceil(0.1 * acc.size)))].mean())


def read(path):
    with h5py.File(path, "r") as f:
        if f.attrs.get("status") not in ("completed", b"completed"):
            return None
        r = f["rounds"]
        get = lambda n: last_finite(r[n][()]) if n in r else math.nan  # noqa: E731
        return {
            "mean": get("client_acc_mean"),
            "p10": get("client_acc_p10"),
            "worst10": worst10(f["clients/accuracy"][()]),
            "global_mean": get("global_client_acc_mean"),
            "test_acc": get("test_accuracy"),
        }


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    sweep, out = Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    groups = defaultdict(list)
    missing = []
    for run in csv.DictReader(open(sweep / "manifest.csv")):
        path = Path(run["results"])
        row = read(path) if path.is_file() else None
        if row is None:
            missing.append(run["run_id"])
            continue
        groups[(float(run["data.partition.alpha"]), method(run["personalization"]))].append(row)
    alphas = sorted({a for a, _ in groups})
    methods = [m for m in ORDER if any(m == k[1] for k in groups)]
    metrics = ["mean", "p10", "worst10", "global_mean", "test_acc"]
    stat = {}
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["alpha", "method", "seeds"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
        for a in alphas:
            for m in methods:
                rows = groups.get((a, m), [])
                if not rows:
                    continue
                cell = {}
                for k in metrics:
                    v = np.array([r[k] for r in rows])
                    cell[k] = (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
                stat[(a, m)] = (len(rows), cell)
                w.writerow([a, m, len(rows)] + [f"{x:.4f}" for k in metrics for x in cell[k]])

    def pct(a, m, k):
        if (a, m) not in stat:
            return ""
        mu, sd = stat[(a, m)][1][k]
        return "" if math.isnan(mu) else f"{100 * mu:.1f} ± {100 * sd:.1f}"

    with open(out / "table.md", "w") as t:
        n = max((v[0] for v in stat.values()), default=0)
        for k, title in [("mean", "Mean client accuracy (%)"),
                         ("p10", "10th-percentile client accuracy (%)"),
                         ("worst10", "Worst-10% client accuracy (%): mean of the lowest 10% of the clients"),
                         ("global_mean", "The global model's mean accuracy on the same clients' test sets (%)")]:
            t.write(f"{title}, last evaluation, mean ± std over {n} seeds.\n\n")
            t.write("| alpha | " + " | ".join(methods) + " |\n|---:|" + "---:|" * len(methods) + "\n")
            for a in alphas:
                t.write(f"| {a:g} | " + " | ".join(pct(a, m, k) for m in methods) + " |\n")
            t.write("\n")
    print(open(out / "table.md").read())

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    for ax, k, title in [(axes[0], "mean", "mean client accuracy"),
                         (axes[1], "p10", "10th-percentile client accuracy")]:
        for m in methods:
            xs = [a for a in alphas if (a, m) in stat]
            mu = np.array([stat[(a, m)][1][k][0] for a in xs])
            sd = np.array([stat[(a, m)][1][k][1] for a in xs])
            fedavg = m.startswith("none")  # drawn on top: ifca can coincide with it
            line, = ax.plot(xs, 100 * mu, "--" if fedavg else "-", marker="s" if fedavg else "o",
                            markersize=4 if fedavg else 6, zorder=3 if fedavg else 2, label=m)
            ax.fill_between(xs, 100 * (mu - sd), 100 * (mu + sd), color=line.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.set_xlabel("Dirichlet alpha (larger: closer to iid)")
        ax.set_ylabel("accuracy on the clients' own test sets (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(argv[3] if len(argv) > 3 else
                 "Fashion-MNIST, logreg, 100 clients (10 per round): train alone or collaborate?")
    fig.tight_layout()
    fig.savefig(out / "crossover.png", dpi=120)
    print(f"wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'crossover.png'}")
    if missing:
        print(f"left out ({len(missing)} missing or not completed): " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
