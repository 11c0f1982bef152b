#!/usr/bin/python3
"""Summarise a sweep written by `cohort sweep`: one row per run.

Usage: scripts/collect.py DIR [--target ACC]

Reads DIR/manifest.csv (run_id, one column per swept key, config path, results path) and each
run's results file. Prints a table and writes DIR/summary.csv with the swept values, status,
rounds done, final and best test accuracy, final test and train loss (the last evaluated value;
rounds without evaluation hold NaN), total uplink bits and wall seconds. With --target ACC (a test
accuracy in (0, 1]) it adds rounds_to_target: the first round whose evaluation reaches ACC, and
the uplink bits spent up to it (bits_to_target); NaN for a run that never does, as in the
FedAvg paper's rounds-to-target tables. A run without a results
file has status "missing"; runs that did not complete are listed at the end with their log.
Exit 0 once the manifest is read (also when runs failed), 2 on usage errors or no manifest.
Uses h5py and numpy: run with Debian's /usr/bin/python3.
"""
import csv
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # read files of runs in progress
import h5py  # noqa: E402
import numpy as np  # noqa: E402

METRICS = ["status", "rounds", "final_acc", "best_acc", "final_test_loss", "final_train_loss",
           "uplink_bits", "wall_s"]
NOT_SWEPT = {"run_id", "config", "config_path", "results", "results_path", "status", "log", "log_path"}


def last_finite(a):
    a = np.asarray(a, dtype=float)
    ok = np.flatnonzero(np.isfinite(a))
    return float(a[ok[-1]]) if ok.size else math.nan


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def first_reaching(acc, rounds, target):
    """The first round whose (evaluated) accuracy is at least target, and its index; NaN, -1 if
    none."""
    hits = np.flatnonzero(np.nan_to_num(np.asarray(acc, dtype=float), nan=-1.0) >= target)
    return (float(rounds[hits[0]]), int(hits[0])) if hits.size else (math.nan, -1)


def read_run(path, target=None):
    """Metrics of one results file; status 'missing' or 'unreadable' when it cannot be read."""
    row = dict.fromkeys(METRICS + (["rounds_to_target", "bits_to_target"] if target else []),
                        math.nan)
    if not path.is_file():
        return {**row, "status": "missing", "rounds": 0}
    try:
        with h5py.File(path, "r") as f:
            rounds = f.get("rounds", {})
            get = lambda name: rounds[name][()] if name in rounds else np.array([])  # noqa: E731
            acc = np.asarray(get("test_accuracy"), dtype=float)
            row.update(
                status=text(f.attrs.get("status", "unknown")),
                rounds=int(f.attrs.get("rounds_done", len(get("round")))),
                final_acc=last_finite(acc),
                best_acc=float(np.nanmax(acc)) if np.isfinite(acc).any() else math.nan,
                final_test_loss=last_finite(get("test_loss")),
                final_train_loss=last_finite(get("train_loss")),
                uplink_bits=float(np.sum(get("uplink_bits"))),
                wall_s=float(f.attrs.get("wall_seconds", math.nan)))
            if target:
                r, i = first_reaching(acc, get("round"), target)
                row.update(rounds_to_target=r,
                           bits_to_target=float(np.sum(get("uplink_bits")[:i + 1])) if i >= 0 else math.nan)
    except (OSError, KeyError, ValueError) as e:
        row.update(status="unreadable", rounds=0)
        print(f"collect: cannot read {path}: {e}", file=sys.stderr)
    return row


def column(header, *names):
    for name in names:
        if name in header:
            return name
    return None


def fmt(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def main(argv):
    args = argv[1:]
    target = None
    if "--target" in args:
        i = args.index("--target")
        try:
            target = float(args[i + 1])
        except (IndexError, ValueError):
            target = math.nan
        if not 0 < target <= 1:
            print("collect: --target needs a test accuracy in (0, 1], e.g. --target 0.8", file=sys.stderr)
            return 2
        del args[i:i + 2]
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: collect.py DIR [--target ACC]   (DIR holds manifest.csv from `cohort sweep`)",
              file=sys.stderr)
        return 2
    sweep = Path(args[0])
    manifest = sweep / "manifest.csv"
    try:
        with open(manifest, newline="") as f:
            reader = csv.DictReader(f)
            header, runs = list(reader.fieldnames or []), list(reader)
    except OSError as e:
        print(f"collect: cannot read {manifest}: {e.strerror}", file=sys.stderr)
        return 2
    results_col = column(header, "results", "results_path", "output", "output_path")
    if "run_id" not in header or results_col is None:
        print(f"collect: {manifest} has no run_id or results column (header: {header})", file=sys.stderr)
        return 2
    swept = [c for c in header if c not in NOT_SWEPT and c != results_col]

    rows, unfinished = [], []
    for run in runs:
        path = Path(run[results_col]) if run[results_col] else sweep / "runs" / run["run_id"] / "metrics.h5"
        if not path.is_absolute() and (sweep / path).exists() or not path.exists():
            path = sweep / path  # relative to DIR (else to the working directory)
        row = {"run_id": run["run_id"], **{c: run[c] for c in swept}, **read_run(path, target)}
        rows.append(row)
        if row["status"] != "completed":
            unfinished.append((row["run_id"], row["status"], sweep / "runs" / run["run_id"] / "log.txt"))

    columns = ["run_id"] + swept + METRICS + (["rounds_to_target", "bits_to_target"] if target else [])
    with open(sweep / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([repr(v) if isinstance(v, float) and not math.isnan(v) else fmt(v)
                             for v in (row[c] for c in columns)])

    cells = [columns] + [[fmt(row[c]) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for r in cells:
        print("  ".join(v.rjust(w) if i >= len(swept) + 2 else v.ljust(w)
                        for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    done = len(rows) - len(unfinished)
    print(f"{done}/{len(rows)} runs completed; summary: {sweep / 'summary.csv'}")
    if unfinished:
        print(f"not completed ({len(unfinished)}):")
        for run_id, status, log in unfinished:
            print(f"  {run_id}  {status}  log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
