#!/usr/bin/python3
"""One PowerSGD step (docs/algorithms.md §2, mode reduce) on two clients, in float64.

tests/unit/test_powersgd.cpp hard-codes this script's output ("powersgd: one step on two
clients"). Run with /usr/bin/python3 (needs numpy):  /usr/bin/python3 tests/powersgd_reference.py
"""
import numpy as np


def orthonormalize(p):
    """Gram-Schmidt exactly as docs/algorithms.md §2: column /= (||column|| + 1e-8), then remove
    its component from every later column."""
    p = p.copy()
    for j in range(p.shape[1]):
        p[:, j] /= np.sqrt(np.sum(p[:, j] ** 2)) + 1e-8
        for k in range(j + 1, p.shape[1]):
            p[:, k] -= np.dot(p[:, j], p[:, k]) * p[:, j]
    return p


def one_step(name, ms, q):
    p = sum(m @ q for m in ms)                     # all-reduce-sum of P_i = M_i Q
    p_hat = orthonormalize(p)
    q_new = sum(m.T @ p_hat for m in ms) / len(ms)  # all-reduce-mean of Q_i = M_i^T P_hat
    decoded = p_hat @ q_new.T
    print(f"case {name}")
    for label, x in [("P", p), ("P_hat", p_hat), ("Q", q_new), ("decoded", decoded)] + [
        (f"e{i + 1}", m - decoded) for i, m in enumerate(ms)
    ]:
        print(f"  {label:8s}" + " ".join(f"{v:.9g}" for v in x.ravel()))  # row-major


M1 = np.array([[2.0, -1.0], [1.0, 3.0], [0.0, 2.0]])
M2 = np.array([[1.0, 1.0], [-2.0, 0.0], [3.0, 1.0]])
one_step("r1", [M1, M2], np.array([[1.0], [1.0]]))
one_step("r2", [M1, M2], np.array([[1.0, 0.0], [1.0, -1.0]]))
