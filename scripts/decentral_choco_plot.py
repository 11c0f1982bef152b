"""Tables and plots of scripts/experiment_choco.sh: gamma grid, best curves, linear-rate fits."""
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

h5dir, out, gammas = sys.argv[1], sys.argv[2], sys.argv[3].split()
LABELS = {"top1": "Choco top-1%", "rand1": "Choco rand-1% (biased)",
          "qsgd16max": "Choco QSGD s=16 (max norm)", "qsgd16l2": "Choco QSGD s=16 (l2 norm)",
          "naive_top1": "naive gossip top-1%", "naive_rand1": "naive gossip rand-1% (biased)"}


def load(path):
    with h5py.File(path, "r") as f:
        r = f["rounds"]
        return dict(cd=r["consensus_distance"][()], bits=r["bits_per_node"][()],
                    status=f.attrs["status"], gap=float(f.attrs["spectral_gap"]),
                    rounds=int(f.attrs["rounds_done"]))


FLOOR = 1e-7  # float32 round-off floor of the consensus distance is about 1e-10 here


def rate(cd):
    """Per-round contraction factor of the consensus distance: a least-squares fit of log cd
    against the round, from 20% of the way to the float32 floor (or the last round) on."""
    cd = np.asarray(cd)
    below = np.nonzero(cd < FLOOR)[0]
    end = int(below[0]) if len(below) else len(cd)
    t = np.arange(1, end + 1)
    keep = t >= 0.2 * end
    slope = np.polyfit(t[keep], np.log(cd[:end][keep]), 1)[0]
    return float(np.exp(slope))


exact = load(f"{h5dir}/exact.h5")
gap = exact["gap"]
best, lines = {}, []
lines.append("# Choco-Gossip gamma grid: ring (and 5 x 5 torus), n = 25, d = 2000 (configs/choco_gossip_ring.yaml)\n")
lines.append(f"Spectral gap of W on the ring (metropolis, 1/3 per edge): {gap:.5f}; 3000 rounds. Entry: consensus distance "
             "(1/n) sum |x_i - x_bar|^2 after the last round, or where the run diverged.\n")
lines.append("| topology | compressor | bits/node/round | " + " | ".join(f"γ={g}" for g in gammas) + " | best γ |")
lines.append("|---|---|---|" + "---|" * len(gammas) + "---|")
for pre, c in [("", "top1"), ("", "rand1"), ("", "qsgd16max"), ("", "qsgd16l2"),
               ("", "naive_top1"), ("", "naive_rand1"), ("torus_", "top1"), ("torus_", "rand1")]:
    cells, score = [], {}
    bits = None
    for g in gammas:
        d = load(f"{h5dir}/{pre}{c}_g{g}.h5")
        bits = d["bits"][0]
        if d["status"] != "completed":
            cells.append(f"diverged (round {d['rounds'] + 1})")
        else:
            cells.append(f"{d['cd'][-1]:.3g}")
            score[g] = d["cd"][-1]
    b = min(score, key=score.get) if score else None
    if b is not None and not pre:
        best[c] = (b, load(f"{h5dir}/{c}_g{b}.h5"))
    where = "torus 5x5" if pre else "ring"
    lines.append(f"| {where} | {LABELS[c]} | {bits:.0f} | " + " | ".join(cells) + f" | {b or 'none'} |")
lines.append("")
lines.append(f"Exact gossip: {exact['bits'][0]:.0f} bits/node/round, consensus distance "
             f"{exact['cd'][-1]:.3g} after {exact['rounds']} rounds.\n")
lines.append("## Linear rates (fit of log consensus distance from 20% of the way to the float32 floor, cd < 1e-7, or the last round)\n")
lines.append("| method | γ | per-round factor ρ | 1 - ρ | (1 - ρ) / gap | rounds per decade | bits/node per decade |")
lines.append("|---|---|---|---|---|---|---|")
rows = [("Exact gossip", "-", exact)] + [(LABELS[c], g, d) for c, (g, d) in best.items()]
for name, g, d in rows:
    rho = rate(d["cd"])
    per_dec = np.log(10) / -np.log(rho) if rho < 1 else np.inf
    lines.append(f"| {name} | {g} | {rho:.6f} | {1 - rho:.3g} | {(1 - rho) / gap:.3g} | "
                 f"{per_dec:.0f} | {per_dec * d['bits'][0]:.3g} |")
# Gap dependence: ring against a 5 x 5 torus (exact gossip, top-1% and rand-1% at their best gamma).
tex = load(f"{h5dir}/torus_exact.h5")
lines.append("\n## Dependence on the spectral gap: ring against a 5 x 5 torus (same n, d, init)\n")
lines.append("| topology | gap | method | best γ (grid above) | 1 - ρ | (1 - ρ) / gap | (1 - ρ) / (1 - ρ of exact gossip) |")
lines.append("|---|---|---|---|---|---|---|")
for topo, pre, ex in [("ring", "", exact), ("torus 5x5", "torus_", tex)]:
    r_ex = 1 - rate(ex["cd"])
    lines.append(f"| {topo} | {ex['gap']:.4f} | exact gossip | - | {r_ex:.3g} | {r_ex / ex['gap']:.3g} | 1 |")
    for c in ["top1", "rand1"]:
        sc = {}
        for g in gammas:
            d = load(f"{h5dir}/{pre}{c}_g{g}.h5")
            if d["status"] == "completed":
                sc[g] = d["cd"][-1]
        g = min(sc, key=sc.get)
        r = 1 - rate(load(f"{h5dir}/{pre}{c}_g{g}.h5")["cd"])
        lines.append(f"| {topo} | {ex['gap']:.4f} | {LABELS[c]} | {g} | {r:.3g} | {r / ex['gap']:.3g} | {r / r_ex:.3g} |")
lines.append("\nFor exact gossip the consensus distance contracts by (1 - gap)^2 per round "
             f"asymptotically: 1 - (1 - gap)^2 = {1 - (1 - gap) ** 2:.4g}.\n")
open(f"{out}/gamma_grid.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

# Curves of the best gamma (every 10th round, to keep the file small).
cols = {"exact": exact, **{c: d for c, (g, d) in best.items()}}
n = min(len(d["cd"]) for d in cols.values())
idx = np.arange(0, n, 10)
with open(f"{out}/curves.csv", "w") as f:
    f.write("round," + ",".join(f"cd_{c},cumbits_{c}" for c in cols) + "\n")
    for i in idx:
        f.write(f"{i + 1}," + ",".join(f"{d['cd'][i]:.6g},{d['bits'][:i + 1].sum():.6g}"
                                       for d in cols.values()) + "\n")

fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
for c, d in cols.items():
    label = "Exact gossip" if c == "exact" else f"{LABELS[c]}, γ={best[c][0]}"
    t = np.arange(1, len(d["cd"]) + 1)
    ls = "--" if c.startswith("naive") else "-"
    ax[0].semilogy(t, d["cd"], ls, label=label)
    ax[1].semilogy(np.cumsum(d["bits"]), d["cd"], ls, label=label)
ax[0].set_xlabel("iteration")
ax[1].set_xlabel("bits sent per node (cumulative)")
ax[1].set_xlim(0, 1e7)
for a in ax:
    a.set_ylabel("consensus distance (1/n) Σ|x_i − x̄|²")
    a.grid(True, which="both", alpha=0.3)
ax[0].legend(fontsize=8)
fig.suptitle(f"Choco-Gossip against naive compressed gossip (dashed), ring n=25, d=2000 (spectral gap {gap:.4f})")
fig.tight_layout()
fig.savefig(f"{out}/consensus.png", dpi=110)
