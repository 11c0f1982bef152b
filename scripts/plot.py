#!/usr/bin/python3
"""Plot one or more cohort results files (metrics.h5) side by side, or a whole sweep.

Usage: scripts/plot.py RUN.h5 [RUN2.h5 ...] -o out.png [--labels a,b] [--title T]
       scripts/plot.py --sweep DIR --group-by KEY [--metric M] [--x round|bits]
                       [--where KEY=VALUE ...] -o out.png [--title T]

Draws a 2x2 figure: accuracy vs round, accuracy vs cumulative uplink bits (log x),
loss vs round and loss vs cumulative uplink bits (test loss solid with markers at the
evaluated rounds, train loss dashed, one colour per run). Rounds where a metric was not
evaluated hold NaN in the file and are skipped. If no run has accuracy (e.g. quadratic
problems) the top row shows /rounds/dist_to_opt when present, else it is left empty.
Prints one summary line per run and the output path. Exit code 2 on usage errors, on a
missing file, or on a file that is not a cohort results file.

Sweep mode reads DIR/manifest.csv (written by `cohort sweep`: run_id, one column per swept
dotted key, config, results) and draws one curve per value of the swept key KEY (sorted
numerically when every value is a number): the mean over the group's runs (typically its
seeds) with a shaded band of +- one sample standard deviation, against round or, with --x
bits, cumulative uplink bits (log axis). M is test_accuracy, test_loss, train_loss or
dist_to_opt (default: test_accuracy when the runs have it, else dist_to_opt, else
test_loss); rounds where M was not evaluated (NaN) are skipped. A loss or distance spanning
orders of magnitude gets a log y axis, where a band reaching zero is cut a decade below the
mean. --where KEY=VALUE keeps only runs whose swept KEY equals VALUE (compared as numbers
when both are numbers, so 1 matches 1.0); repeat it to pin several keys (values given for
the same key are alternatives). Runs whose results file is missing, unreadable or not status
"completed" are left out with a warning. A warning also says when swept keys other than KEY
and seed still vary in the selection (the band then spans them too). Prints one summary line
per group (value, number of runs, final mean +- std of M: each run's last evaluated value)
and the output path. Exit code 2 when there is no manifest, KEY or a --where key is not
swept (the swept keys are listed), or no completed run is selected.

Uses only h5py, numpy and matplotlib; runs with Debian's /usr/bin/python3.
"""
import argparse
import csv
import os
import re
import sys
import warnings
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


# ----------------------------------------------------------------------------------------
# Sweep mode

SWEEP_METRICS = ("test_accuracy", "test_loss", "train_loss", "dist_to_opt")
RUN_KEY = {"test_accuracy": "accuracy", "test_loss": "test_loss", "train_loss": "train_loss",
           "dist_to_opt": "dist_to_opt"}
METRIC_NAME = {"test_accuracy": "test accuracy", "test_loss": "test loss",
               "train_loss": "train loss", "dist_to_opt": "distance to optimum"}
MANIFEST_COLUMNS = {"run_id", "config", "results"}  # every other column is a swept key


class SweepError(Exception):
    """A usage error in sweep mode (exit 2)."""


def as_number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def same_value(a, b):
    x, y = as_number(a), as_number(b)
    return a.strip() == b.strip() if x is None or y is None else x == y


def sort_values(values):
    """Numerically when every value is a number, else naturally ("[2, 10]" before "[10, 10]")."""
    numbers = [as_number(v) for v in values]
    if all(n is not None for n in numbers):
        return [v for _, v in sorted(zip(numbers, values))]

    def natural(text):
        parts = re.split(r"(\d+(?:\.\d+)?)", text)
        return [(0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)]
    return sorted(values, key=lambda v: (natural(v), v))


def read_manifest(directory):
    """Rows of DIR/manifest.csv and the swept keys (columns other than run_id/config/results)."""
    path = Path(directory) / "manifest.csv"
    if not path.is_file():
        raise SweepError(f"{path}: no such file (is {directory} a directory written by "
                         "`cohort sweep`?)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    if "run_id" not in columns or "results" not in columns:
        raise SweepError(f"{path}: not a sweep manifest (no run_id or results column)")
    keys = [c for c in columns if c not in MANIFEST_COLUMNS]
    for row in rows:  # a relative results path is relative to the sweep directory
        results = Path(row["results"] or "")
        if not results.is_absolute():
            row["results"] = str(Path(directory) / results)
    return rows, keys


def parse_where(items, keys):
    """--where KEY=VALUE items as {key: [values]} (values for one key are alternatives)."""
    pins = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepError(f"--where {item!r}: expected KEY=VALUE")
        if key not in keys:
            raise SweepError(f"--where {item!r}: '{key}' is not a swept key "
                             f"(swept keys: {', '.join(keys)})")
        pins.setdefault(key, []).append(value)
    return pins


def group_curve(runs, metric, x_axis):
    """Mean and sample std of a metric over runs, aligned by round number.

    Returns x, mean, std, n (runs with a finite value at that round), keeping only rounds where
    at least one run has a finite value (and, for --x bits, a positive bit count)."""
    rounds = np.unique(np.concatenate([r["round"] for r in runs]))
    values = np.full((len(runs), len(rounds)), np.nan)
    bits = np.full((len(runs), len(rounds)), np.nan)
    for i, run in enumerate(runs):
        at = np.searchsorted(rounds, run["round"])
        values[i, at] = run[RUN_KEY[metric]]
        bits[i, at] = run["uplink"]
    n = np.isfinite(values).sum(axis=0)
    keep = n > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns, dropped below
        mean = np.nanmean(values, axis=0)
        std = np.where(n > 1, np.nanstd(values, axis=0, ddof=1) if len(runs) > 1 else 0.0, 0.0)
        x = rounds if x_axis == "round" else np.nanmean(bits, axis=0)
    if x_axis == "bits":
        keep &= np.isfinite(x) & (x > 0)
    return x[keep], mean[keep], np.nan_to_num(std[keep]), n[keep]


def sweep_main(args, prog):
    def warn(message):
        print(f"{prog}: warning: {message}", file=sys.stderr)

    try:
        rows, keys = read_manifest(args.sweep)
        key = args.group_by
        if key not in keys:
            raise SweepError(f"--group-by '{key}' is not a swept key of {args.sweep} "
                             f"(swept keys: {', '.join(keys) if keys else 'none'})")
        pins = parse_where(args.where, keys)
        selected = [row for row in rows
                    if all(any(same_value(row[k], v) for v in vs) for k, vs in pins.items())]
        if not selected:
            where = " ".join(f"--where {w}" for w in args.where)
            raise SweepError(f"no runs in {args.sweep} match {where}" if where
                             else f"{args.sweep}/manifest.csv lists no runs")

        runs, skipped = [], []
        for row in selected:
            try:
                run = load_run(row["results"], row["run_id"])
            except RunError as e:
                skipped.append(f"{row['run_id']} ({e})")
                continue
            if run["status"] != "completed":
                skipped.append(f"{row['run_id']} (status {run['status']})")
                continue
            run["value"] = row[key]
            run["values"] = {k: row[k] for k in keys}
            runs.append(run)
        if skipped:
            warn(f"skipping {len(skipped)} of {len(selected)} selected runs: " + "; ".join(skipped))
        if not runs:
            raise SweepError(f"no completed runs to plot in {args.sweep}")

        metric = args.metric
        if metric is None:
            metric = next((m for m in ("test_accuracy", "dist_to_opt", "test_loss")
                           if any(np.isfinite(r[RUN_KEY[m]]).any() for r in runs)), "test_loss")
        if not any(np.isfinite(r[RUN_KEY[metric]]).any() for r in runs):
            raise SweepError(f"no selected run has a finite {metric} "
                             f"(try --metric {' or '.join(m for m in SWEEP_METRICS if m != metric)})")
    except SweepError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2

    # Swept keys other than KEY and seed that still vary: the band averages over them too.
    varying = []
    for k in keys:
        if k in (key, "seed"):
            continue
        seen = sort_values(sorted({r["values"][k] for r in runs}))
        if len(seen) > 1:
            varying.append(f"{k} ({', '.join(seen)})")
    if varying:
        warn(f"swept keys other than {key} and seed vary within the groups, so each band also "
             f"spans {'; '.join(varying)}: pin them with --where KEY=VALUE")

    groups = {}
    for run in runs:
        groups.setdefault(run["value"], []).append(run)
    order = sort_values(list(groups))

    fig, ax = plt.subplots(figsize=(8, 5.5), constrained_layout=True)
    cmap = plt.get_cmap("viridis") if len(order) > 10 else None
    curves = []
    for i, value in enumerate(order):
        members = groups[value]
        series = [r[RUN_KEY[metric]] for r in members]
        finals = np.array([last_finite(v) for v in series])
        finals = finals[np.isfinite(finals)]
        f_mean = finals.mean() if finals.size else float("nan")
        f_std = finals.std(ddof=1) if finals.size > 1 else 0.0
        last = sorted({int(r["round"][np.isfinite(v)][-1])
                       for r, v in zip(members, series) if np.isfinite(v).any()})
        at = "" if not last else (f" at round {last[0]}" if len(last) == 1
                                  else f" at rounds {last[0]}-{last[-1]}")
        runs_text = f"{len(members)} run{'s' if len(members) != 1 else ''}"
        print(f"{key}={value}: {runs_text}, final {metric} = {f_mean:.6g} "
              f"+/- {f_std:.3g}{at}" + ("" if finals.size == len(members)
                                       else f" ({finals.size} runs with a finite value)"))
        colour = cmap(i / max(len(order) - 1, 1)) if cmap else f"C{i}"
        label = f"{key}={value} ({runs_text})"
        curves.append((group_curve(members, metric, args.x), colour, label))

    means = np.concatenate([c[0][1] for c in curves])
    means = means[np.isfinite(means)]
    log_y = (metric != "test_accuracy" and means.size > 0 and means.min() > 0
             and means.max() > (10 if metric == "dist_to_opt" else 100) * means.min())
    for (x, mean, std, _), colour, label in curves:
        if not x.size:
            continue
        style = dict(marker="o", ms=3) if x.size <= 60 else {}
        ax.plot(x, mean, color=colour, label=label, **style)
        if (std > 0).any():
            lower = mean - std
            if log_y:  # a band reaching zero has no end on a log axis: stop it a decade down
                lower = np.maximum(lower, mean / 10)
            ax.fill_between(x, lower, mean + std, color=colour, alpha=0.2, lw=0)
    if log_y:
        ax.set_yscale("log")  # as in the run plots: only where it spans orders of magnitude
    ax.set_ylabel(METRIC_NAME[metric])
    if args.x == "bits":
        ax.set_xlabel("cumulative uplink bits")
        ax.set_xscale("log")
    else:
        ax.set_xlabel("round")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    if args.title:
        ax.set_title(args.title)
    else:
        pins = ", ".join(args.where)
        ax.set_title(f"{Path(args.sweep).resolve().name}: {METRIC_NAME[metric]} by {key}\n"
                     f"mean ± std over runs" + (f", {pins}" if pins else ""), fontsize="medium")

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN.h5", help="cohort results files")
    parser.add_argument("-o", "--output", required=True, help="output image (e.g. out.png)")
    parser.add_argument("--labels", help="comma-separated legend labels, one per run")
    parser.add_argument("--title", help="figure title")
    sweep = parser.add_argument_group("sweep mode (instead of RUN.h5 files)")
    sweep.add_argument("--sweep", metavar="DIR", help="sweep directory holding manifest.csv")
    sweep.add_argument("--group-by", metavar="KEY", help="swept key: one curve per value")
    sweep.add_argument("--metric", choices=SWEEP_METRICS,
                       help="metric to plot (default: test_accuracy, else dist_to_opt, else test_loss)")
    sweep.add_argument("--x", choices=("round", "bits"), default="round",
                       help="x axis: round, or cumulative uplink bits (log scale)")
    sweep.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                       help="keep only runs whose swept KEY equals VALUE (repeatable)")
    args = parser.parse_args(argv)

    if args.sweep is not None:
        if args.runs:
            parser.error("give either RUN.h5 files or --sweep DIR, not both")
        if args.labels:
            parser.error("--labels applies to RUN.h5 files; sweep curves are labelled KEY=value")
        if not args.group_by:
            parser.error("--sweep needs --group-by KEY")
        return sweep_main(args, parser.prog)
    if not args.runs:
        parser.error("give RUN.h5 files, or --sweep DIR --group-by KEY")
    for name in ("group_by", "metric", "where"):
        if getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} needs --sweep DIR")
    if args.x != "round":
        parser.error("--x needs --sweep DIR")

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
