#!/usr/bin/python3
"""Tables and plots of the client-drift sweeps (results/drift/README.md).

Usage: scripts/drift_scale.py SWEEP_DIR [SWEEP_DIR ...] --out results/drift

Reads each SWEEP_DIR/manifest.csv (written by `cohort sweep`) and every run's results file. A run
is labelled by its data set (data.name), its algorithm (fedavg with a momentum server optimizer
is "fedavgm"), its local steps K and its seed, all read from the config stored in the file.
Writes into --out:
  table.md, table.csv     final test accuracy (the last evaluation), mean ± std over seeds, per
                          data set x algorithm x K, and the uplink bits of one run; the CSV
                          also has the mean of each run's last 5 evaluations (less noisy), the
                          Markdown the difference to fedavg on the same seed
  accuracy_<data>.png     test accuracy against rounds (top) and against cumulative uplink bits
                          (bottom), one column per K, mean over seeds with a ±1 std band
Each data set's main local rate is the one most of its runs use; runs at another local rate
(a check of the tuning) get a table of their own and stay out of the plots. Runs that did not
complete are reported and left out. Exit 0 on success, 2 on usage errors or
when no completed run is found. Uses h5py, numpy, matplotlib and PyYAML (Debian's /usr/bin/python3).
"""
import argparse
import csv
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

ALGORITHMS = ["fedavg", "fedavgm", "fedprox", "scaffold", "mime", "mimelite"]
COLOURS = dict(fedavg="tab:blue", fedavgm="tab:cyan", fedprox="tab:green", scaffold="tab:red",
               mime="tab:purple", mimelite="tab:pink")
# fedprox (mu = 0.1) lies almost on fedavg, and at K = 1 exactly (y_0 = x): dashed lines keep
# both visible.
STYLES = dict(fedavg="-", fedavgm="--", fedprox=":", scaffold="-", mime="-", mimelite="--")
DATA_TITLES = {"fashion_mnist": "Fashion-MNIST, Dirichlet(0.1)",
               "synthetic_fedprox": "synthetic(1, 1)"}


def label_of(cfg):
    alg = cfg["algorithm"]["name"]
    if alg == "fedavg" and cfg["server_optimizer"]["name"] != "sgd":
        return "fedavgm"
    return alg


def read_runs(sweeps):
    runs, skipped = [], []
    for sweep in sweeps:
        manifest = Path(sweep) / "manifest.csv"
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            path = Path(row["results"])
            if not path.is_absolute() and not path.exists():
                path = Path(sweep) / path
            try:
                with h5py.File(path, "r") as f:
                    status = str(f.attrs.get("status", ""))
                    if status != "completed":
                        skipped.append((row["run_id"], status))
                        continue
                    cfg = yaml.safe_load(f.attrs["config"])
                    r = f["rounds"]
                    runs.append(dict(
                        data=cfg["data"]["name"], alg=label_of(cfg),
                        K=int(cfg["algorithm"]["local_steps"]), seed=int(cfg["seed"]),
                        lr=float(cfg["algorithm"]["local_lr"]),
                        round=r["round"][()], acc=r["test_accuracy"][()],
                        bits=np.cumsum(r["uplink_bits"][()])))
            except OSError as e:
                skipped.append((row["run_id"], f"unreadable ({e})"))
    return runs, skipped


def stats(group):
    """Evaluated rounds, cumulative bits there, mean and std of accuracy over the group's seeds."""
    ok = np.isfinite(group[0]["acc"])
    acc = np.stack([g["acc"][ok] for g in group])
    return (group[0]["round"][ok], group[0]["bits"][ok], acc.mean(0),
            acc.std(0, ddof=1) if len(group) > 1 else np.zeros(acc.shape[1]), acc[:, -1])


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweeps", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv[1:])
    try:
        runs, skipped = read_runs(args.sweeps)
    except (OSError, KeyError) as e:
        print(f"drift_scale: {e}", file=sys.stderr)
        return 2
    for run_id, status in skipped:
        print(f"drift_scale: left out {run_id}: {status}", file=sys.stderr)
    if not runs:
        print("drift_scale: no completed runs", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Each data set's main local rate is the one most of its runs use; runs at another rate
    # (a check of the tuning) go to a table of their own.
    main_lr = {}
    for d in {r["data"] for r in runs}:
        lrs = [r["lr"] for r in runs if r["data"] == d]
        main_lr[d] = max(set(lrs), key=lrs.count)
    groups, other = defaultdict(list), defaultdict(list)
    for r in runs:
        if r["lr"] == main_lr[r["data"]]:
            groups[(r["data"], r["alg"], r["K"])].append(r)
        else:
            other[(r["data"], r["alg"], r["K"], r["lr"])].append(r)
    datasets = [d for d in DATA_TITLES if any(k[0] == d for k in groups)]
    datasets += sorted({k[0] for k in groups} - set(datasets))
    ks = sorted({k[2] for k in groups})

    def paired(g, d, k):
        """Final accuracy minus fedavg's on the same seed (the seed also draws the data)."""
        base = {r["seed"]: r for r in groups.get((d, "fedavg", k), [])}
        diffs = [r["acc"][np.isfinite(r["acc"])][-1] - base[r["seed"]]["acc"][
            np.isfinite(base[r["seed"]]["acc"])][-1] for r in g if r["seed"] in base]
        if not diffs:
            return None
        return np.mean(diffs), (np.std(diffs, ddof=1) if len(diffs) > 1 else 0.0), len(diffs)

    summary = {}
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["data", "algorithm", "local_steps", "seeds", "final_accuracy_mean",
                    "final_accuracy_std", "last5_accuracy_mean", "last5_accuracy_std",
                    "best_mean_accuracy", "uplink_gbit_per_run"])
        for d in datasets:
            for alg in ALGORITHMS:
                for k in ks:
                    g = groups.get((d, alg, k))
                    if not g:
                        continue
                    _, bits, mean, std, final = stats(g)
                    s = final.std(ddof=1) if len(final) > 1 else 0.0
                    last5 = np.stack([x["acc"][np.isfinite(x["acc"])][-5:].mean() for x in g])
                    s5 = last5.std(ddof=1) if len(last5) > 1 else 0.0
                    summary[(d, alg, k)] = (final.mean(), s, len(g), bits[-1])
                    w.writerow([d, alg, k, len(g), f"{final.mean():.4f}", f"{s:.4f}",
                                f"{last5.mean():.4f}", f"{s5:.4f}", f"{mean.max():.4f}",
                                f"{bits[-1] / 1e9:.4f}"])
    with open(out / "table.md", "w") as f:
        for d in datasets:
            title = DATA_TITLES.get(d, d)
            f.write(f"**{title}** (local lr {main_lr[d]:g}): final test accuracy (%), mean ± std "
                    "over seeds\n\n")
            f.write("| algorithm | " + " | ".join(f"K = {k}" for k in ks) +
                    " | uplink Gbit per run (K = {}) |\n".format(ks[-1]))
            f.write("|---|" + "---|" * len(ks) + "---|\n")
            for alg in ALGORITHMS:
                cells = []
                for k in ks:
                    v = summary.get((d, alg, k))
                    cells.append(f"{100 * v[0]:.2f} ± {100 * v[1]:.2f}" if v else "–")
                v = summary.get((d, alg, ks[-1]))
                cells.append(f"{v[3] / 1e9:.3f}" if v else "–")
                if any(c != "–" for c in cells):
                    f.write(f"| {alg} | " + " | ".join(cells) + " |\n")
            f.write(f"\n**{title}**: final accuracy minus fedavg's on the same seed (percentage "
                    "points), mean ± std over seeds\n\n")
            f.write("| algorithm | " + " | ".join(f"K = {k}" for k in ks) + " |\n")
            f.write("|---|" + "---|" * len(ks) + "\n")
            for alg in ALGORITHMS[1:]:
                cells = []
                for k in ks:
                    g = groups.get((d, alg, k))
                    v = paired(g, d, k) if g else None
                    cells.append(f"{100 * v[0]:+.2f} ± {100 * v[1]:.2f}" if v else "–")
                if any(c != "–" for c in cells):
                    f.write(f"| {alg} | " + " | ".join(cells) + " |\n")
            f.write("\n")
        if other:
            f.write("**Other local rates** (final test accuracy %, mean ± std over seeds; "
                    "minus fedavg's at the main rate on the same seed)\n\n")
            f.write("| data | algorithm | K | local lr | final accuracy | minus fedavg |\n")
            f.write("|---|---|---|---|---|---|\n")
            for (d, alg, k, lr), g in sorted(other.items()):
                final = np.array([r["acc"][np.isfinite(r["acc"])][-1] for r in g])
                sd = final.std(ddof=1) if len(final) > 1 else 0.0
                v = paired(g, d, k)
                diff = f"{100 * v[0]:+.2f} ± {100 * v[1]:.2f}" if v else "–"
                f.write(f"| {DATA_TITLES.get(d, d)} | {alg} | {k} | {lr:g} | "
                        f"{100 * final.mean():.2f} ± {100 * sd:.2f} | {diff} |\n")
            f.write("\n")

    for d in datasets:
        fig, axes = plt.subplots(2, len(ks), figsize=(5 * len(ks), 8), squeeze=False)
        for j, k in enumerate(ks):
            for alg in ALGORITHMS:
                g = groups.get((d, alg, k))
                if not g:
                    continue
                rounds, bits, mean, std, _ = stats(g)
                for ax, xs in ((axes[0, j], rounds), (axes[1, j], bits)):
                    ax.plot(xs, 100 * mean, STYLES[alg], color=COLOURS[alg], lw=1.4, label=f"{alg} ({len(g)} seeds)")
                    ax.fill_between(xs, 100 * (mean - std), 100 * (mean + std),
                                    color=COLOURS[alg], alpha=0.15, lw=0)
            axes[0, j].set_title(f"K = {k} local steps")
            axes[0, j].set_xlabel("round")
            axes[1, j].set_xlabel("cumulative uplink bits")
            axes[1, j].set_xscale("log")
            for ax in axes[:, j]:
                ax.set_ylabel("test accuracy (%)")
                ax.grid(True, alpha=0.3)
                lo = min(100 * summary[(d, a, k)][0] for a in ALGORITHMS if (d, a, k) in summary)
                ax.set_ylim(max(0, lo - 15), None)
        axes[0, 0].legend(fontsize=8, loc="lower right")
        fig.suptitle(f"{DATA_TITLES.get(d, d)}: logistic regression, 100 clients, 10 a round "
                     "(mean ± std over seeds)")
        fig.tight_layout()
        fig.savefig(out / f"accuracy_{d}.png", dpi=85)
        plt.close(fig)
    print((out / "table.md").read_text(), end="")
    print(f"{len(runs)} runs; wrote {out / 'table.md'}, {out / 'table.csv'} and "
          + ", ".join(str(out / f"accuracy_{d}.png") for d in datasets))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
