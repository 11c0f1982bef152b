#!/usr/bin/python3
"""Tabulate the bucketing paper's published exp3 logs (MNIST, PyTorch reference code).

Usage: repro_bucketing_reference.py REPO OUT_CSV
REPO is a checkout of epfml/byzantine-robust-noniid-optimizer (it commits its result logs under
outputs/exp3/all/<agg>_<attack>_<momentum>_s<bucketing>_seed<seed>/stats, one JSON-like record
per line); OUT_CSV gets one row per (rule, attack, momentum, bucketing) with the final test
accuracy (epoch 20 = iteration 600) as mean and std over the seeds found.
"""
import csv
import os
import re
import statistics
import sys


RECORD = re.compile(r"'type': 'validation'.*'E': (\d+),.*'top1': ([-+0-9.eE]+|nan)")


def final_accuracy(path):
    """(epoch, top-1 %) of the last validation record; a diverged run logs nan."""
    last = None
    with open(path) as f:
        for line in f:
            m = RECORD.search(line)
            if m:
                last = (int(m.group(1)), float(m.group(2)))
    return last


def main():
    repo, out = sys.argv[1], sys.argv[2]
    root = os.path.join(repo, "outputs", "exp3", "all")
    pat = re.compile(r"^(krum|cm|cp|rfa|avg)_(\w+?)_([0-9.]+)_s(\d+)_seed(\d+)$")
    runs = {}
    for name in sorted(os.listdir(root)):
        m = pat.match(name)
        stats = os.path.join(root, name, "stats")
        if not m or not os.path.exists(stats):
            continue
        acc = final_accuracy(stats)
        if acc is None:
            continue
        agg, attack, beta, s, seed = m.groups()
        runs.setdefault((agg, attack, beta, s), []).append((int(seed), acc[0], acc[1]))
    rename = {"cp": "cclip", "BF": "signflip", "LF": "labelflip", "IPM": "ipm", "ALIE": "alie"}
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["aggregator", "attack", "beta", "bucketing", "seeds", "epoch", "mean", "std"])
        for (agg, attack, beta, s), vals in sorted(runs.items()):
            accs = [v[2] for v in vals]
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            w.writerow([rename.get(agg, agg), rename.get(attack, attack), beta, s, len(accs),
                        max(v[1] for v in vals), f"{statistics.mean(accs):.2f}", f"{sd:.2f}"])
    print(f"{len(runs)} settings from {sum(len(v) for v in runs.values())} runs -> {out}")


if __name__ == "__main__":
    main()
