#!/usr/bin/python3
"""Draw the iterate paths of runs on 2-D quadratic clients over the clients' contours
(the Mime paper's Figure 2; results/drift/README.md).

Usage: scripts/plot_drift.py RUN.h5 [RUN.h5 ...] [--labels A,B] -o figure.png

Each RUN.h5 is a `cohort run` of data.name = quadratic with data.dim = 2 and data.record_x: true,
so that /rounds/x_0 and /rounds/x_1 hold x after every evaluated round (set eval.every: 1 for
the whole path). The clients' curvatures h, centres a and the start x0 are read from the config
stored in the file. One panel per run: the contours of every client's f_i, the client optima
a_i, their average, the optimum x* of the mean objective, and the path from (x0, x0) through the
recorded iterates. A last panel shows |x - x*| against the round for all runs.
Exit 0 on success, 2 on usage errors (a file that is not such a run). Uses h5py, numpy,
matplotlib and PyYAML: run with Debian's /usr/bin/python3.
"""
import argparse
import os
import sys

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

CLIENT_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]


def expand(values, n, dim, key):
    """data.h / data.a as an n x dim array: n values are broadcast, n*dim are client-major."""
    v = np.asarray(values, dtype=float)
    if v.size == n * dim:
        return v.reshape(n, dim)
    if v.size == n:
        return np.repeat(v[:, None], dim, axis=1)
    raise ValueError(f"data.{key} has {v.size} values; expected {n} or {n * dim} (random "
                     "values are not stored in the config: give h and a explicitly)")


def read_run(path):
    with h5py.File(path, "r") as f:
        cfg = yaml.safe_load(f.attrs["config"])
        data = cfg["data"]
        if data.get("name") != "quadratic" or int(data.get("dim", 0)) != 2:
            raise ValueError("not a run of data.name = quadratic with data.dim = 2")
        rounds = f["rounds"]
        if "x_0" not in rounds or "x_1" not in rounds:
            raise ValueError("no /rounds/x_0, x_1: run it with data.record_x: true")
        n = int(cfg["clients"]["num_clients"])
        h, a = expand(data["h"], n, 2, "h"), expand(data["a"], n, 2, "a")
        x = np.stack([rounds["x_0"][()], rounds["x_1"][()]], axis=1)
        r = rounds["round"][()]
        keep = np.all(np.isfinite(x), axis=1)
        x0 = float(data["x0"])
        path = np.vstack([[x0, x0], x[keep]])
        dist = rounds["dist_to_opt"][()][keep]
        return dict(h=h, a=a, path=path, rounds=np.concatenate([[0], r[keep]]),
                    dist=dist, status=str(f.attrs.get("status", "")))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--labels", default="", help="comma-separated panel titles (default: file names)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--title", default="Two quadratic clients, K = 3 local steps, β = 0.5")
    args = ap.parse_args(argv[1:])
    labels = args.labels.split(",") if args.labels else [os.path.basename(p) for p in args.runs]
    if len(labels) != len(args.runs):
        print(f"plot_drift: {len(labels)} labels for {len(args.runs)} runs", file=sys.stderr)
        return 2
    runs = []
    for p in args.runs:
        try:
            runs.append(read_run(p))
        except (OSError, KeyError, ValueError) as e:
            print(f"plot_drift: {p}: {e}", file=sys.stderr)
            return 2
    h, a = runs[0]["h"], runs[0]["a"]
    for p, r in zip(args.runs[1:], runs[1:]):
        if not (np.array_equal(r["h"], h) and np.array_equal(r["a"], a)):
            print(f"plot_drift: {p} has other clients than {args.runs[0]}", file=sys.stderr)
            return 2
    opt = (h * a).sum(0) / h.sum(0)      # minimiser of the mean objective
    avg = a.mean(0)                       # average of the client optima

    pts = np.vstack([a, [opt, avg]] + [r["path"] for r in runs])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.25 * (hi - lo).max()
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))

    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(5.2 * (len(runs) + 1), 5.0))
    for ax, run, label in zip(axes, runs, labels):
        for i in range(len(h)):
            f = 0.5 * (h[i, 0] * (gx - a[i, 0]) ** 2 + h[i, 1] * (gy - a[i, 1]) ** 2)
            colour = CLIENT_COLOURS[i % len(CLIENT_COLOURS)]
            ax.contour(gx, gy, f, levels=np.geomspace(0.05, 0.5 * h.max() * (hi - lo).max() ** 2, 8),
                       colors=colour, linewidths=0.8, alpha=0.6)
            ax.plot(*a[i], marker="*", ms=14, color=colour, ls="none", label=f"client {i + 1} optimum")
        ax.plot(*avg, marker="s", ms=8, color="grey", ls="none", label="average of client optima")
        ax.plot(*opt, marker="*", ms=18, color="black", ls="none", label="optimum x* of the mean")
        p = run["path"]
        ax.plot(p[:, 0], p[:, 1], "-o", color="crimson", ms=3, lw=1.2, label="server iterates")
        for j in range(min(len(p) - 1, 8)):  # arrows on the first rounds show the direction
            ax.annotate("", xy=p[j + 1], xytext=p[j],
                        arrowprops=dict(arrowstyle="->", color="crimson", lw=1.2))
        ax.plot(*p[0], marker="o", ms=8, color="crimson", mfc="white", ls="none", label="start")
        ax.plot(*p[-1], marker="X", ms=10, color="crimson", ls="none",
                label=f"after {int(run['rounds'][-1])} rounds")
        ax.set_title(label)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_xlabel("x₀")
        ax.set_ylabel("x₁")
    axes[0].legend(loc="lower right", fontsize=7, framealpha=0.9)
    ax = axes[-1]
    for run, label in zip(runs, labels):
        ax.semilogy(run["rounds"][1:], np.maximum(run["dist"], 1e-16), "-o", ms=3, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel("|x − x*|")
    ax.set_title("distance to the optimum of the mean")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    for run, label in zip(runs, labels):
        print(f"{label}: {len(run['path']) - 1} rounds, final x = ({run['path'][-1][0]:.6g}, "
              f"{run['path'][-1][1]:.6g}), |x - x*| = {run['dist'][-1]:.3g}")
    print(f"x* = ({opt[0]:.6g}, {opt[1]:.6g}), average of client optima = ({avg[0]:.6g}, {avg[1]:.6g})")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
