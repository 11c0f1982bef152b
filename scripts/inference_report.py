#!/usr/bin/env python3
"""Tables and figures of scripts/experiment_inference.sh (results/inference/README.md).

usage: inference_report.py RUNS OUT
Reads RUNS/invert_*.h5 (`cohort attack-privacy invert`) and RUNS/membership_*.{h5,auc} (runs and
`cohort attack-privacy membership`); writes OUT/table.md, OUT/inversion.png, OUT/membership.png.
"""
import math
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

runs, out = sys.argv[1], sys.argv[2]

INVERSIONS = [  # file stem, label
    ("none_b1", "no DP, B = 1"),
    ("none_b4", "no DP, B = 4"),
    ("none_b16", "no DP, B = 16"),
    ("dpsgd_s0.0001", "dp_sgd σ = 1e-4"),
    ("dpsgd_s0.001", "dp_sgd σ = 1e-3"),
    ("dpsgd_s0.01", "dp_sgd σ = 0.01"),
    ("dpsgd_s1", "dp_sgd σ = 1"),
    ("dpfedavg_s1", "dp_fedavg σ = 1"),
]
MEMBERSHIP = [("none", math.inf), ("eps128", 128), ("eps32", 32), ("eps8", 8), ("eps2", 2)]

lines = ["## Gradient inversion (client 0, Fashion-MNIST, mlp, initial model)", "",
         "| setting | batch | relative L2 error | max abs error | nearest sample |",
         "|---|---:|---:|---:|---:|"]
images = []
for stem, label in INVERSIONS:
    path = os.path.join(runs, f"invert_{stem}.h5")
    if not os.path.exists(path):
        continue
    with h5py.File(path, "r") as f:
        a = f.attrs
        nearest = int(a["nearest"])
        lines.append(f"| {label} | {int(a['batch'])} | {float(a['relative_error']):.3g} | "
                     f"{float(a['max_abs_error']):.3g} | {nearest} |")
        images.append((label, f["/inversion/original"][()][nearest],
                       f["/inversion/reconstructed"][()][0], float(a["relative_error"])))

if images:
    n = len(images)
    side = int(round(math.sqrt(images[0][1].size)))
    fig, ax = plt.subplots(2, n, figsize=(1.8 * n, 4.0))
    for j, (label, orig, rec, err) in enumerate(images):
        lo, hi = float(orig.min()), float(orig.max())
        ax[0, j].imshow(orig.reshape(side, side), cmap="gray", vmin=lo, vmax=hi)
        ax[1, j].imshow(np.clip(rec, lo, hi).reshape(side, side), cmap="gray", vmin=lo, vmax=hi)
        ax[0, j].set_title(label, fontsize=8)
        ax[1, j].set_xlabel(f"rel. error {err:.2g}", fontsize=8)
        for k in (0, 1):
            ax[k, j].set_xticks([])
            ax[k, j].set_yticks([])
    ax[0, 0].set_ylabel("original\n(nearest of batch)", fontsize=8)
    ax[1, 0].set_ylabel("reconstructed", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "inversion.png"), dpi=110)

lines += ["", "## Membership inference by loss threshold (200 members, 1000 test rows)", "",
          "| privacy | epsilon (δ = 1e-5) | noise multiplier | test accuracy | AUC | "
          "member mean loss | non-member mean loss |",
          "|---|---:|---:|---:|---:|---:|---:|"]
points = []
for stem, eps in MEMBERSHIP:
    h5, auc_file = (os.path.join(runs, f"membership_{stem}.{e}") for e in ("h5", "auc"))
    if not (os.path.exists(h5) and os.path.exists(auc_file)):
        continue
    m = re.search(r"AUC ([0-9.]+) \((\d+) members, mean loss ([0-9.e+-]+); (\d+) non-members, "
                  r"mean loss ([0-9.e+-]+)\)", open(auc_file).read())
    with h5py.File(h5, "r") as f:
        acc = f["/rounds/test_accuracy"][()]
        acc = float(acc[~np.isnan(acc)][-1])
        sigma = float(f.attrs["noise_multiplier"]) if "noise_multiplier" in f.attrs else 0.0
        got = float(f["/rounds/epsilon"][()][-1]) if "/rounds/epsilon" in f else math.inf
    auc = float(m.group(1))
    points.append((eps, got, auc, acc))
    lines.append(f"| {'none' if math.isinf(eps) else 'dp_sgd'} | "
                 f"{'∞' if math.isinf(got) else f'{got:.3g}'} | {sigma:.3g} | {100 * acc:.1f}% | "
                 f"{auc:.4f} | {float(m.group(3)):.3g} | {float(m.group(5)):.3g} |")

if points:
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    dp = [p for p in points if math.isfinite(p[0])]
    plain = [p for p in points if math.isinf(p[0])]
    for k, (col, name) in enumerate(((2, "membership AUC"), (3, "test accuracy"))):
        ax[k].plot([p[1] for p in dp], [p[col] for p in dp], "o-", label="dp_sgd")
        for p in plain:
            ax[k].axhline(p[col], color="k", ls="--", lw=1, label="no DP")
        ax[k].set_xscale("log")
        ax[k].set_xlabel("epsilon (δ = 1e-5)")
        ax[k].set_ylabel(name)
        ax[k].grid(alpha=0.3)
    ax[0].axhline(0.5, color="gray", ls=":", lw=1, label="chance")
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "membership.png"), dpi=110)

open(os.path.join(out, "table.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
