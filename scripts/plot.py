#!/usr/bin/python3
"""Plot one or more cohort results files (metrics.h5) side by side.

Usage: scripts/plot.py RUN.h5 [RUN2.h5 ...] -o out.png [--labels a,b] [--title T]

Draws a 2x2 figure: accuracy vs round, accuracy vs cumulative uplink bits (log x),
loss vs round and loss vs cumulative uplink bits (test loss solid with markers at the
evaluated rounds, train loss dashed, one colour per run). Rounds where a metric was not
evaluated hold NaN in the file and are skipped. If no run has accuracy (e.g. quadratic
problems) the top row shows /rounds/dist_to_opt when present, else it is left empty.
Prints one summary line per run and the output path. Exit code 2 on usage errors, on a
missing file, or on a file that is not a cohort results file.

Uses only h5py, numpy and matplotlib; runs with Debian's /usr/bin/python3.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # read files of runs in progress
import h5py  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class RunError(Exception):
    """A results file that cannot be read; the message names the file."""


def attr_str(attrs, name, default=""):
    value = attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def load_run(path, label):
    """Read /rounds/* and the root attributes of one results file into a dict."""
    if not Path(path).is_file():
        raise RunError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if "rounds" not in f or "round" not in f["rounds"] or "status" not in f.attrs:
                raise RunError(f"{path}: not a cohort results file (no /rounds/round or status)")
            rounds = {k: np.asarray(d[()], dtype=float) for k, d in f["rounds"].items()
                      if isinstance(d, h5py.Dataset) and d.ndim == 1}
            status, message = attr_str(f.attrs, "status"), attr_str(f.attrs, "message")
    except OSError as e:
        raise RunError(f"{path}: not a cohort results file ({e})") from None
    n = len(rounds["round"])
    evaluated = ~np.isnan(rounds.get("test_loss", np.full(n, np.nan)))
    for key, values in rounds.items():
        # Metrics written only at evaluated rounds (shorter than /rounds/round) are
        # spread back onto those rounds; anything else that does not fit is dropped.
        if len(values) != n:
            full = np.full(n, np.nan)
            if len(values) == evaluated.sum():
                full[evaluated] = values
            elif len(values) < n:
                full[:len(values)] = values
            else:
                full = values[:n]
            rounds[key] = full
    nan = np.full(n, np.nan)
    return {
        "label": label + ("" if status == "completed" else f" ({status})"),
        "status": status,
        "message": message,
        "round": rounds["round"],
        "uplink": np.cumsum(np.nan_to_num(rounds.get("uplink_bits", nan))),
        "train_loss": rounds.get("train_loss", nan),
        "test_loss": rounds.get("test_loss", nan),
        "accuracy": rounds.get("test_accuracy", nan),
        "dist_to_opt": rounds.get("dist_to_opt", nan),
    }


def default_label(path):
    p = Path(path).resolve()
    return p.parent.name or p.stem


def last_finite(values):
    finite = values[np.isfinite(values)]
    return finite[-1] if finite.size else float("nan")


def plot_points(ax, x, y, colour, label=None, **style):
    """Plot y against x where y is finite (not evaluated / diverged entries skipped)."""
    keep = np.isfinite(y)
    if keep.any():
        ax.plot(x[keep], y[keep], color=colour, label=label, **style)
    return keep.any()


def make_figure(runs, title):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), constrained_layout=True)
    (acc_r, acc_b), (loss_r, loss_b) = axes
    top = "accuracy" if any(np.isfinite(r["accuracy"]).any() for r in runs) else "dist_to_opt"
    top_name = {"accuracy": "test accuracy", "dist_to_opt": "distance to optimum"}[top]
    shown = False
    for i, run in enumerate(runs):
        c = f"C{i}"
        for ax, x in ((acc_r, run["round"]), (acc_b, run["uplink"])):
            shown |= plot_points(ax, x, run[top], c, run["label"], marker="o", ms=3)
        for ax, x in ((loss_r, run["round"]), (loss_b, run["uplink"])):
            plot_points(ax, x, run["test_loss"], c, run["label"], marker="o", ms=3)
            plot_points(ax, x, run["train_loss"], c, ls="--", lw=1, alpha=0.8)
    if shown:
        for ax in (acc_r, acc_b):
            ax.set_ylabel(top_name)
            values = np.concatenate([r[top][np.isfinite(r[top])] for r in runs])
            if top == "dist_to_opt" and values.min() > 0 and values.max() > 10 * values.min():
                ax.set_yscale("log")  # log only where it spans more than a decade
        acc_r.set_title(f"{top_name} vs round")
        acc_b.set_title(f"{top_name} vs communication")
    else:
        for ax in (acc_r, acc_b):
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no accuracy or dist_to_opt in these runs",
                    ha="center", va="center", transform=ax.transAxes, color="grey")
    loss_r.set_title("loss vs round (solid: test, dashed: train)")
    loss_b.set_title("loss vs communication (solid: test, dashed: train)")
    losses = np.concatenate([r[k][np.isfinite(r[k])] for r in runs for k in ("test_loss", "train_loss")])
    for ax in (loss_r, loss_b):
        ax.set_ylabel("loss")
        if losses.size and losses.min() > 0 and losses.max() > 100 * losses.min():
            ax.set_yscale("log")  # losses that fall by orders of magnitude
    for ax in (acc_r, loss_r):
        ax.set_xlabel("round")
    for ax in (acc_b, loss_b):
        ax.set_xlabel("cumulative uplink bits")
        ax.set_xscale("log")
    for ax in axes.flat:
        if ax.axison:
            ax.grid(True, which="major", alpha=0.3)
    legend_ax = acc_r if shown else loss_r
    if legend_ax.get_legend_handles_labels()[0]:
        legend_ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN.h5", help="cohort results files")
    parser.add_argument("-o", "--output", required=True, help="output image (e.g. out.png)")
    parser.add_argument("--labels", help="comma-separated legend labels, one per run")
    parser.add_argument("--title", help="figure title")
    args = parser.parse_args(argv)

    labels = args.labels.split(",") if args.labels else [default_label(p) for p in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"--labels has {len(labels)} entries for {len(args.runs)} runs")
    try:
        runs = [load_run(path, label) for path, label in zip(args.runs, labels)]
    except RunError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2

    for run in runs:
        line = f"{run['label']}: status={run['status']} rounds={len(run['round'])}"
        if np.isfinite(run["accuracy"]).any():
            line += f" final_accuracy={last_finite(run['accuracy']):.4f}"
        line += f" final_test_loss={last_finite(run['test_loss']):.4g}"
        if np.isfinite(run["dist_to_opt"]).any():
            line += f" final_dist_to_opt={last_finite(run['dist_to_opt']):.4g}"
        line += f" uplink_bits={run['uplink'][-1] if len(run['uplink']) else 0:.4g}"
        if run["message"]:
            line += f" message={run['message']!r}"
        print(line)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = make_figure(runs, args.title)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
