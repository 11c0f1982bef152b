"""Table and figure of scripts/repro_memsgd.sh: suboptimality f(x̄_t) - f* of the methods, mean
and standard deviation over seeds, against epochs; f* by Newton's method on the same objective
(2-class softmax regression with biases, mean log-loss + lambda/2 |theta|^2 over all parameters,
as cohort's logreg with weight_decay lambda computes it), in float64."""
import glob
import json
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

h5dir, out, svm, lam = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
METHODS = [("sgd", "SGD (no compression)"), ("topk_mem", "top-1% with memory"),
           ("randk_mem", "rand-1% with memory"), ("topk", "top-1% without memory"),
           ("randk", "rand-1% without memory")]


def read_svm(path):
    ys, rows = [], []
    for line in open(path):
        t = line.split()
        ys.append(float(t[0]))
        rows.append([float(v.split(":")[1]) for v in t[1:]])
    return np.array(rows), np.array(ys)


def f_star(X, y):
    # Labels -1/+1 become classes 0/1 (cohort maps the sorted distinct labels to 0..C-1).
    n, d = X.shape
    Xt = np.hstack([X, np.ones((n, 1))])
    c = (y > 0).astype(float)
    theta = np.zeros(2 * (d + 1))  # [w_0, w_1, b_0, b_1] folded as [(w_0, b_0), (w_1, b_1)]

    def parts(th):
        W = th.reshape(2, d + 1)
        z = Xt @ W.T
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return W, z, p

    def f(th):
        W, z, p = parts(th)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(logp[np.arange(n), c.astype(int)]) + 0.5 * lam * th @ th

    for _ in range(30):
        W, z, p = parts(theta)
        Y = np.stack([1 - c, c], axis=1)
        g = ((p - Y).T @ Xt / n).ravel() + lam * theta
        s = p[:, 0] * p[:, 1]
        B = (Xt * s[:, None]).T @ Xt / n
        H = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), B) + lam * np.eye(2 * (d + 1))
        step = np.linalg.solve(H, g)
        theta -= step
        if np.linalg.norm(g) < 1e-13:
            break
    return f(theta), np.linalg.norm(g)


X, y = read_svm(svm)
fstar, gnorm = f_star(X, y)
curves, rows = {}, []
for key, label in METHODS:
    runs = sorted(glob.glob(f"{h5dir}/{key}_s*.h5"))
    if not runs:
        continue
    obj = []
    for r in runs:
        with h5py.File(r, "r") as h:
            rr = h["rounds"]
            keep = ~np.isnan(rr["objective"][()])
            t = rr["round"][()][keep]
            obj.append(rr["objective"][()][keep] - fstar)
            bits = rr["uplink_bits"][()].mean()
    m = min(len(o) for o in obj)
    obj = np.array([o[:m] for o in obj])
    curves[label] = (t[:m] / X.shape[0], obj)
    final = obj[:, -1]
    rows.append((label, len(runs), final.mean(), final.std(ddof=1) if len(runs) > 1 else 0.0, bits))

lines = [f"f* = {fstar:.10f} (Newton, gradient norm {gnorm:.1e}); n = {X.shape[0]}, "
         f"d = {X.shape[1]}, lambda = {lam:g}.\n",
         "| method | seeds | f(x̄_T) − f* after the last epoch (mean ± std) | bits per step |",
         "|---|---|---|---|"]
for label, n_, mu, sd, bits in rows:
    lines.append(f"| {label} | {n_} | {mu:.3e} ± {sd:.1e} | {bits:.0f} |")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
with open(f"{out}/curves.csv", "w") as fcsv:
    fcsv.write("method,epoch,mean,std\n")
    for label, (ep, obj) in curves.items():
        for i in range(len(ep)):
            sd = obj[:, i].std(ddof=1) if obj.shape[0] > 1 else 0.0
            fcsv.write(f"{label},{ep[i]:.3f},{obj[:, i].mean():.6e},{sd:.3e}\n")

fig, ax = plt.subplots(figsize=(7, 4.5))
for label, (ep, obj) in curves.items():
    mu = obj.mean(axis=0)
    sd = obj.std(axis=0, ddof=1) if obj.shape[0] > 1 else np.zeros_like(mu)
    ls = ":" if "without" in label else "-"
    ax.semilogy(ep, mu, ls, label=label)
    ax.fill_between(ep, np.maximum(mu - sd, 1e-12), mu + sd, alpha=0.2)
ax.set_xlabel("epochs")
ax.set_ylabel("f(x̄) − f*  (training objective, weighted average)")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
ax.set_title("Mem-SGD, logistic regression (epsilon-like, n = 10,000, d = 500), k = 1%")
fig.tight_layout()
fig.savefig(f"{out}/suboptimality.png", dpi=110)
json.dump({"f_star": fstar}, open(f"{out}/f_star.json", "w"))
