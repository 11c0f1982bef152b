"""Table and plot of scripts/experiment_dp.sh: accuracy of DP-FedAvg against epsilon."""
import math
import sys

import h5py
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

h5dir, out = sys.argv[1], sys.argv[2]
RUNS = [("eps1", "1"), ("eps2", "2"), ("eps4", "4"), ("eps8", "8"),
        ("eps_inf", "∞ (clipping, no noise)"), ("nodp", "no DP (FedAvg, no clipping)")]


def load(name):
    with h5py.File(f"{h5dir}/{name}.h5", "r") as f:
        r = f["rounds"]
        acc = r["test_accuracy"][()]
        eps = r["epsilon"][()] if "epsilon" in r else np.full(len(acc), np.nan)
        return dict(round=r["round"][()], acc=acc, loss=r["test_loss"][()], eps=eps,
                    clients=r["clients"][()], status=f.attrs["status"])


def sigma_of(name):
    # The noise multiplier the run used (calibrated where asked), as its file records it.
    with h5py.File(f"{h5dir}/{name}.h5", "r") as f:
        return float(f.attrs.get("noise_multiplier", math.nan))


rows, curves = [], {}
for name, label in RUNS:
    d = load(name)
    ev = ~np.isnan(d["acc"])
    final = d["acc"][ev][-1]
    best = np.nanmax(d["acc"])
    last5 = d["acc"][ev][-5:].mean()
    eps = d["eps"][-1]
    sig = sigma_of(name) if name != "nodp" else math.nan
    rows.append((label, eps, sig, final, last5, best, d["clients"].mean(), d["status"]))
    curves[label] = (d["round"][ev], d["acc"][ev])

lines = ["| target ε | ε after 200 rounds (δ = 1e-5) | noise multiplier σ | final accuracy | "
         "mean of the last 5 evaluations | best accuracy | mean clients per round | status |",
         "|---|---|---|---|---|---|---|---|"]
with open(f"{out}/table.csv", "w") as f:
    f.write("target,epsilon,sigma,final_acc,last5_acc,best_acc,mean_clients,status\n")
    for label, eps, sig, final, last5, best, cl, st in rows:
        e = "∞" if not np.isfinite(eps) else f"{eps:.3f}"
        s = "–" if math.isnan(sig) else f"{sig:.4g}"
        lines.append(f"| {label} | {e} | {s} | {100 * final:.2f}% | {100 * last5:.2f}% | "
                     f"{100 * best:.2f}% | {cl:.1f} | {st} |")
        f.write(f"{label.split()[0]},{eps},{sig},{final},{last5},{best},{cl},{st}\n")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
for label, (t, a) in curves.items():
    ax[0].plot(t, 100 * a, label=f"ε = {label}" if label[0].isdigit() or label[0] == "∞" else label)
ax[0].set_xlabel("round")
ax[0].set_ylabel("test accuracy (%)")
ax[0].legend(fontsize=8)
ax[0].grid(alpha=0.3)
fin = [(r[1], r[4]) for r in rows[:4]]
ax[1].semilogx([e for e, _ in fin], [100 * a for _, a in fin], "o-", label="DP-FedAvg (ε, δ = 1e-5)")
ax[1].axhline(100 * rows[4][4], color="C1", ls="--", label="ε = ∞ (clipping only)")
ax[1].axhline(100 * rows[5][4], color="C2", ls=":", label="no DP")
ax[1].set_xlabel("ε after 200 rounds")
ax[1].set_ylabel("test accuracy, mean of the last 5 evaluations (%)")
ax[1].set_xticks([1, 2, 4, 8])
ax[1].set_xticklabels(["1", "2", "4", "8"])
ax[1].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax[1].legend(fontsize=8)
ax[1].grid(alpha=0.3, which="both")
fig.suptitle("DP-FedAvg on Fashion-MNIST: 1000 clients, q = 0.1, MLP 784-128-10, C = 1, 200 rounds")
fig.tight_layout()
fig.savefig(f"{out}/accuracy.png", dpi=110)
