"""Table and plots of scripts/experiment_topology.sh: rounds to a test accuracy vs spectral gap."""
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

h5, out = sys.argv[1], sys.argv[2]
TOPOS = ["ring", "torus", "exponential", "complete"]
SPLITS = {"iid": "IID", "dir05": "Dirichlet(0.5)"}
THRESH = [0.78, 0.80]


def load(path):
    with h5py.File(path, "r") as f:
        r = f["rounds"]
        acc = r["test_accuracy"][()]
        ok = ~np.isnan(acc)
        nm, nmin = r["node_acc_mean"][()], r["node_acc_min"][()]
        okn = ~np.isnan(nm)
        return dict(t=r["round"][()][ok], acc=acc[ok], cd=r["consensus_distance"][()][ok],
                    tn=r["round"][()][okn], nmean=nm[okn], nmin=nmin[okn],
                    gap=float(f.attrs["spectral_gap"]), status=f.attrs["status"],
                    node_mean=nm[okn][-1], node_min=nmin[okn][-1],
                    bits=r["bits_per_node"][0], wall=float(f.attrs["wall_seconds"]))


def first(d, a, key="acc", t="t"):  # first evaluated round at or above accuracy a
    i = np.nonzero(d[key] >= a)[0]
    return int(d[t][i[0]]) if len(i) else None


L = ["# Topology matters: D-SGD on 64 nodes (configs/decentral_topology.yaml)\n",
     "Fashion-MNIST, logreg, 1 SGD step (batch 32, lr 0.05) + 1 gossip step (metropolis weights) "
     "per round, 600 rounds. The average model x̄ is evaluated every 5 rounds, every node's own "
     "model every 25 rounds (so rounds to a threshold are multiples of 5, resp. 25). "
     "'—' = not reached in 600 rounds.\n",
     "| split | topology | degree | spectral gap | x̄: rounds to 78% | x̄: rounds to 80% | nodes' mean acc: rounds to 78% | nodes' min acc: rounds to 78% | final acc of x̄ | node acc mean / min (final) | consensus dist. (final) | wall s |",
     "|---|---|---|---|---|---|---|---|---|---|---|---|"]
DEG = {"ring": 2, "torus": 4, "exponential": 11, "complete": 63}
res = {}
for s, sl in SPLITS.items():
    for t in TOPOS:
        d = load(f"{h5}/{t}_{s}.h5")
        res[(s, t)] = d
        r = [first(d, a) for a in THRESH]
        r += [first(d, 0.78, "nmean", "tn"), first(d, 0.78, "nmin", "tn")]
        L.append(f"| {sl} | {t} | {DEG[t]} | {d['gap']:.4g} | {r[0] or '—'} | {r[1] or '—'} | "
                 f"{r[2] or '—'} | {r[3] or '—'} | "
                 f"{d['acc'][-1]:.4f} | {d['node_mean']:.4f} / {d['node_min']:.4f} | "
                 f"{d['cd'][-1]:.3g} | {d['wall']:.1f} |")
open(f"{out}/table.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))

fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
for s, sl in SPLITS.items():
    for a, mk in zip(THRESH, ["o", "s"]):
        xs, ys = [], []
        for t in TOPOS:
            r = first(res[(s, t)], a)
            if r is not None:
                xs.append(res[(s, t)]["gap"])
                ys.append(r)
        ax[0].semilogx(xs, ys, marker=mk, ls="-" if s == "iid" else "--", label=f"{sl}, {a:.0%}")
    xs, ys = [], []
    for t in TOPOS:
        r = first(res[(s, t)], 0.78, "nmin", "tn")
        if r is not None:
            xs.append(res[(s, t)]["gap"])
            ys.append(r)
    ax[0].semilogx(xs, ys, marker="^", ls="-" if s == "iid" else "--", label=f"{sl}, worst node 78%")
ax[0].set_xlabel("spectral gap of W")
ax[0].set_ylabel("rounds to threshold (x̄, or the worst node)")
ax[0].grid(True, which="both", alpha=0.3)
ax[0].legend(fontsize=8)
for s, ls in zip(SPLITS, ["-", "--"]):
    for t in TOPOS:
        d = res[(s, t)]
        ax[1].plot(d["t"], d["acc"], ls=ls, label=f"{t} ({SPLITS[s]})")
ax[1].set_ylim(0.70, 0.85)
ax[1].set_xlabel("round")
ax[1].set_ylabel("test accuracy of x̄")
ax[1].grid(True, alpha=0.3)
ax[1].legend(fontsize=7, ncol=2)
fig.suptitle("D-SGD, 64 nodes, Fashion-MNIST logreg")
fig.tight_layout()
fig.savefig(f"{out}/rounds_vs_gap.png", dpi=110)
