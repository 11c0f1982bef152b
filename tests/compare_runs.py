#!/usr/bin/python3
"""Bitwise comparison of two cohort results files.

Compares every /rounds dataset except wall-clock timings (time_*), every /model and /clients
dataset, and the resolved config attribute (minus output.path; skipped with --ignore-config, for
runs that differ only in settings that must not change results, such as comm.plan). NaN equals NaN. Exit 0 when identical, 1 with a
report of the first differences otherwise.
"""
import sys

import h5py
import numpy as np


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def without_output_path(config_text):
    """The resolved config minus output.path, which differs between the runs compared."""
    lines, section = [], None
    for line in config_text.splitlines():
        if line and not line.startswith(" "):
            section = line.split(":")[0]
        if section == "output" and line.strip().startswith("path:"):
            continue
        lines.append(line)
    return "\n".join(lines)


def main(a_path, b_path, ignore_config=False):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        da, db = datasets(a), datasets(b)
        keys = sorted(k for k in set(da) | set(db) if not k.startswith("rounds/time_"))
        bad = []
        for k in keys:
            if k not in da or k not in db:
                bad.append(f"{k}: only in {'first' if k in da else 'second'} file")
                continue
            x, y = np.asarray(da[k]), np.asarray(db[k])
            same = x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()
            if not same:
                bad.append(f"{k}: differs ({x.ravel()[:4]} vs {y.ravel()[:4]})")
        if a.attrs["status"] != b.attrs["status"]:
            bad.append("attribute status differs")
        if not ignore_config and without_output_path(a.attrs["config"]) != without_output_path(b.attrs["config"]):
            bad.append("attribute config differs (beyond output.path)")
        if "rounds/round" not in da or len(da["rounds/round"]) == 0:
            bad.append("no rounds recorded")
    if bad:
        print(f"{a_path} vs {b_path}: {len(bad)} differences", file=sys.stderr)
        for line in bad[:20]:
            print("  " + line, file=sys.stderr)
        return 1
    print(f"identical: {a_path} == {b_path} ({len(keys)} datasets)")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--ignore-config"]
    if len(args) != 2:
        print("usage: compare_runs.py [--ignore-config] A.h5 B.h5", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(args[0], args[1], "--ignore-config" in sys.argv))
