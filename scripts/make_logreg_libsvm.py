"""Writes a dense binary logistic-regression data set in LIBSVM format, like the epsilon data set
of the Mem-SGD experiments but smaller: rows a_i ~ N(0, I/d) (norm about 1), a planted w* ~
N(0, s^2 I), labels b_i = +1 with probability sigmoid(a_i . w*), else -1.
    /usr/bin/python3 scripts/make_logreg_libsvm.py OUT.svm --rows 10000 --dim 500 --scale 3 --seed 1
"""
import argparse

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--rows", type=int, default=10000)
p.add_argument("--dim", type=int, default=500)
p.add_argument("--scale", type=float, default=3.0)
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()
rng = np.random.default_rng(a.seed)
X = rng.standard_normal((a.rows, a.dim)) / np.sqrt(a.dim)
w = a.scale * rng.standard_normal(a.dim)
prob = 1 / (1 + np.exp(-X @ w))
y = np.where(rng.random(a.rows) < prob, 1, -1)
idx = np.arange(1, a.dim + 1)
with open(a.out, "w") as f:
    for i in range(a.rows):
        f.write(f"{y[i]:+d} " + " ".join(f"{j}:{v:.6g}" for j, v in zip(idx, X[i])) + "\n")
print(f"{a.out}: {a.rows} rows, {a.dim} features, {np.mean(y > 0):.3f} positive")
