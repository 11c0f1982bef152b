"""Table and figure of scripts/repro_ef_signsgd.sh: final test accuracy per method and batch size
at its best learning rate (mean +- std over seeds; the rate chosen by the mean), and every run."""
import collections
import glob
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

h5dir, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
NAMES = {"sgdm": "SGDm", "signum": "Signum", "ssign": "scaled sign",
         "ef_ssign": "EF scaled sign (EF-signSGD)"}
acc = collections.defaultdict(list)  # (method, B, lr) -> final accuracies
bits = {}
for path in sorted(glob.glob(f"{h5dir}/*.h5")):
    m = re.match(r"(.+)_b(\d+)_lr([0-9.e-]+)_s(\d+)\.h5", os.path.basename(path))
    if not m:
        continue
    method, b, lr = m.group(1), int(m.group(2)), m.group(3)
    with h5py.File(path, "r") as f:
        a = f["rounds/test_accuracy"][()]
        a = a[~np.isnan(a)]
        ok = f.attrs["status"] == "completed" and len(a) > 0
        acc[(method, b, lr)].append(float(a[-1]) if ok else 0.1)  # diverged: chance level
        bits[method] = float(f["rounds/uplink_bits"][()].mean())
with open(f"{out}/runs_{mode}.csv", "w") as f:
    f.write("method,batch,lr,seeds,mean_acc,std_acc\n")
    for (method, b, lr), v in sorted(acc.items()):
        f.write(f"{method},{b},{lr},{len(v)},{np.mean(v):.4f},{np.std(v, ddof=1) if len(v) > 1 else 0:.4f}\n")
best = {}
for (method, b, lr), v in acc.items():
    if (method, b) not in best or np.mean(v) > np.mean(best[(method, b)][1]):
        best[(method, b)] = (lr, v)
batches = sorted({b for _, b in best})
lines = [f"Mode `{mode}`; final test accuracy at the best of three learning rates (mean ± std over "
         "seeds, the rate in brackets); a diverged run counts as 10%.\n",
         "| method | bits per step | " + " | ".join(f"B = {b}" for b in batches) + " |",
         "|---|---|" + "---|" * len(batches)]
for method in NAMES:
    if not any((method, b) in best for b in batches):
        continue
    cells = []
    for b in batches:
        lr, v = best[(method, b)]
        sd = f" ± {100 * np.std(v, ddof=1):.2f}" if len(v) > 1 else ""
        cells.append(f"{100 * np.mean(v):.2f}%{sd} ({lr})")
    lines.append(f"| {NAMES[method]} | {bits[method]:.0f} | " + " | ".join(cells) + " |")
open(f"{out}/table_{mode}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for method, label in NAMES.items():
    ys = [100 * np.mean(best[(method, b)][1]) for b in batches if (method, b) in best]
    es = [100 * np.std(best[(method, b)][1], ddof=1) if len(best[(method, b)][1]) > 1 else 0
          for b in batches if (method, b) in best]
    ax.errorbar(batches[:len(ys)], ys, yerr=es, marker="o", capsize=3, label=label)
ax.set_xscale("log", base=2)
ax.set_xticks(batches)
ax.set_xticklabels([str(b) for b in batches])
ax.set_xlabel("batch size")
ax.set_ylabel("final test accuracy (%), best of 3 rates")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
ax.set_title(f"EF-signSGD batch-size table, Fashion-MNIST MLP ({mode})")
fig.tight_layout()
fig.savefig(f"{out}/accuracy_{mode}.png", dpi=110)
