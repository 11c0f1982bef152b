"""Tables and figure of scripts/repro_signsgd_vote.sh: the step-size tuning, and final test
accuracy against the number of adversaries (mean +- std over seeds)."""
import glob
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

h5dir, out, mode, lr_vote, lr_sgd = sys.argv[1:6]


def final(path):
    with h5py.File(path, "r") as f:
        a = f["rounds/test_accuracy"][()]
        a = a[~np.isnan(a)]
        st = f.attrs["status"]
        bits = float(f["rounds/uplink_bits"][()].mean())
        return (float(a[-1]) if st == "completed" and len(a) else float("nan")), st, bits


lines = ["| method | step size | final test accuracy (seed 1, k = 0) | status |", "|---|---|---|---|"]
for p in sorted(glob.glob(f"{h5dir}/tune_*.h5")):
    m = re.match(r"tune_(\w+?)_lr([0-9.]+)\.h5", os.path.basename(p))
    acc, st, _ = final(p)
    name = "majority vote" if m.group(1) == "vote" else "SGD (mean)"
    lines.append(f"| {name} | {m.group(2)} | {'–' if np.isnan(acc) else f'{100 * acc:.2f}%'} | {st} |")
lines.append(f"\nChosen: majority vote {lr_vote}, SGD {lr_sgd}.")
open(f"{out}/tuning_{mode}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

METHODS = [("vote", "signSGD, majority vote (any adversary scale)"),
           ("sgd", "SGD, mean; adversaries send −u"), ("sgd10", "SGD, mean; adversaries send −10u")]
rows = ["| method | bits per worker per round | " + " | ".join(f"k = {k} ({100 * k / 7:.0f}%)" for k in range(4)) + " |",
        "|---|---|" + "---|" * 4]
series = {}
for key, label in METHODS:
    cells, ys, es = [], [], []
    bits = None
    for k in range(4):
        runs = sorted(glob.glob(f"{h5dir}/{key if k or key != 'sgd10' else 'sgd'}_k{k}_s*.h5"))
        vals = []
        for p in runs:
            acc, st, bits = final(p)
            vals.append(acc)
        if not vals:
            cells.append("–")
            ys.append(np.nan)
            es.append(0)
            continue
        v = np.array(vals)
        ndiv = int(np.isnan(v).sum())
        if ndiv == len(v):
            cells.append(f"diverged ({ndiv}/{len(v)})")
            ys.append(np.nan)
            es.append(0)
            continue
        ok = v[~np.isnan(v)]
        sd = f" ± {100 * ok.std(ddof=1):.2f}" if len(ok) > 1 else ""
        cells.append(f"{100 * ok.mean():.2f}%{sd}" + (f" ({ndiv} diverged)" if ndiv else ""))
        ys.append(100 * ok.mean())
        es.append(100 * ok.std(ddof=1) if len(ok) > 1 else 0)
    rows.append(f"| {label} | {bits / 7:.0f} | " + " | ".join(cells) + " |")
    series[label] = (ys, es)
open(f"{out}/table_{mode}.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for label, (ys, es) in series.items():
    ax.errorbar(range(4), ys, yerr=es, marker="o", capsize=3, label=label)
ax.set_xticks(range(4))
ax.set_xticklabels([f"{k} ({100 * k / 7:.0f}%)" for k in range(4)])
ax.set_xlabel("adversaries among 7 workers")
ax.set_ylabel("final test accuracy (%)")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
ax.set_title(f"signSGD majority vote vs SGD, Fashion-MNIST MLP ({mode})")
fig.tight_layout()
fig.savefig(f"{out}/accuracy_{mode}.png", dpi=110)
