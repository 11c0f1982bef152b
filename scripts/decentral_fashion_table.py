"""Table and plots of scripts/experiment_decentral_fashion.sh.
   decentral_fashion_table.py H5DIR OUTDIR "GAMMAS"   writes table.md, accuracy.png"""
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

LABELS = {"top10": "Choco-SGD top-10%", "top1": "Choco-SGD top-1%",
          "qsgd16": "Choco-SGD QSGD s=16 (max norm)"}


def load(path):
    with h5py.File(path, "r") as f:
        r = f["rounds"]
        acc = r["test_accuracy"][()]
        ok = ~np.isnan(acc)
        nm = r["node_acc_mean"][()]
        nmin = r["node_acc_min"][()]
        okn = ~np.isnan(nm)
        return dict(t=r["round"][()][ok], acc=acc[ok], cumbits=np.cumsum(r["bits_per_node"][()])[ok],
                    cd=r["consensus_distance"][()][ok], node_mean=nm[okn][-1] if okn.any() else np.nan,
                    node_min=nmin[okn][-1] if okn.any() else np.nan, status=f.attrs["status"],
                    gap=float(f.attrs["spectral_gap"]), wall=float(f.attrs["wall_seconds"]))


def score(d):  # mean accuracy of the average model over the last 200 rounds (diverged: -1)
    if d["status"] != "completed":
        return -1.0
    return float(d["acc"][d["t"] > d["t"][-1] - 200].mean())


h5, out, gammas = sys.argv[1], sys.argv[2], sys.argv[3].split()
TOPOS = ["ring", "torus"]


def best(c, topo):
    return max(gammas, key=lambda g: score(load(f"{h5}/{c}_{topo}_g{g}.h5")))


L = ["# Choco-SGD vs D-SGD on Fashion-MNIST (configs/decentral_fashion.yaml)\n",
     "16 nodes, Dirichlet(0.5), logreg (7,850 parameters), 1 SGD step (batch 32, lr 0.05) + 1 "
     "gossip step per round, 1000 rounds, metropolis weights. Accuracy is of the average model x̄; "
     "'last 200' is its mean over the evaluations of the last 200 rounds (every 25 rounds). "
     "Bits are cumulative uplink bits per node (one broadcast to all neighbours per round).\n"]
for topo in TOPOS:
    L += [f"## γ grid on the {topo} (mean accuracy of x̄ over the last 200 rounds)\n",
          "| compressor | " + " | ".join(f"γ={g}" for g in gammas) + " |",
          "|---|" + "---|" * len(gammas)]
    for c in LABELS:
        cells = []
        for g in gammas:
            d = load(f"{h5}/{c}_{topo}_g{g}.h5")
            cells.append("diverged" if d["status"] != "completed" else f"{score(d):.4f}")
        L.append(f"| {LABELS[c]} | " + " | ".join(cells) + " |")
    L.append("")
L += ["## Best γ per topology\n",
      "| topology (gap) | method | γ | bits/node/round | final acc | last 200 | node acc mean / min (final) | consensus dist. (final) | rounds to 80% | bits/node to 80% | wall s |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
fig, ax = plt.subplots(2, 2, figsize=(12, 8))
for row, topo in enumerate(["ring", "torus"]):
    runs = [("D-SGD", "-", f"{h5}/dsgd_{topo}.h5")]
    for c in LABELS:
        g = best(c, topo)
        runs.append((LABELS[c], g, f"{h5}/{c}_{topo}_g{g}.h5"))
    for name, g, path in runs:
        d = load(path)
        reach = np.nonzero(d["acc"] >= 0.80)[0]
        bits80 = f"{d['cumbits'][reach[0]]:.3g}" if len(reach) else "not reached"
        r80 = f"{d['t'][reach[0]]}" if len(reach) else "not reached"
        bpr = d["cumbits"][0] / d["t"][0]
        L.append(f"| {topo} ({d['gap']:.4f}) | {name} | {g} | {bpr:.0f} | {d['acc'][-1]:.4f} | "
                 f"{score(d):.4f} | {d['node_mean']:.4f} / {d['node_min']:.4f} | {d['cd'][-1]:.3g} | "
                 f"{r80} | {bits80} | {d['wall']:.1f} |")
        lab = name if g == "-" else f"{name}, γ={g}"
        ax[row][0].plot(d["t"], d["acc"], label=lab)
        ax[row][1].semilogx(d["cumbits"], d["acc"], label=lab)
    ax[row][0].set_title(f"{topo}: accuracy of x̄ vs rounds")
    ax[row][1].set_title(f"{topo}: accuracy of x̄ vs bits per node")
    ax[row][1].set_xlabel("cumulative uplink bits per node")
    ax[row][0].set_xlabel("round")
    for a in ax[row]:
        a.set_ylim(0.70, 0.86)
        a.grid(True, alpha=0.3)
        a.set_ylabel("test accuracy")
    ax[row][0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(f"{out}/accuracy.png", dpi=110)
open(f"{out}/table.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
