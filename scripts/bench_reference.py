#!/usr/bin/python3
"""Reference throughput of the robust aggregators and compressors written in numpy, one thread,
on this machine: the peer that `cohort bench aggregate` and `cohort bench compress` compare to
(the papers' own code is PyTorch, which this machine does not have; numpy's array operations
are the same kind of whole-array kernels).

Each rule follows its textbook numpy form (docs/algorithms.md §2-3): cm = np.median, tm = sort and
mean, krum / multikrum from the Gram matrix, gm = smoothed Weiszfeld (T = 3 from 0), cclip
(L = 1, tau = 10, from 0); sign packs bits, top-k uses argpartition, random-k draws k distinct
indices, QSGD (s = 4, one bucket) draws one uniform per value. Times are the best of --repeats;
GB/s counts the float32 input once, as cohort's benchmarks do.

    OMP_NUM_THREADS=1 /usr/bin/python3 scripts/bench_reference.py --json results/bench_reference.json
"""
import argparse
import json
import os
import platform
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
import numpy as np  # noqa: E402  (after the thread settings)


def best(repeats, fn):
    t = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


# ---- aggregators -------------------------------------------------------------------------------

def cm(x):
    return np.median(x, axis=0)


def tm(x, b):
    n = x.shape[0]
    return np.sort(x, axis=0)[b:n - b].mean(axis=0)


def krum_scores(x, f):
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    g = x @ x.T
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * g, 0.0)
    np.fill_diagonal(dist, np.inf)
    k = x.shape[0] - f - 2
    return np.sort(dist, axis=1)[:, :k].sum(axis=1)


def krum(x, f):
    return x[np.argmin(krum_scores(x, f))]


def multikrum(x, f):
    m = x.shape[0] - f
    return x[np.argsort(krum_scores(x, f), kind="stable")[:m]].mean(axis=0)


def gm(x, iters=3, nu=0.1):
    z = np.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(iters):
        beta = 1.0 / np.maximum(nu, np.linalg.norm(x - z, axis=1))
        z = (beta[:, None] * x).sum(axis=0) / beta.sum()
    return z


def cclip(x, tau=10.0, iters=1):
    v = np.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(iters):
        diff = x - v
        norm = np.linalg.norm(diff, axis=1)
        clip = np.minimum(1.0, tau / np.maximum(norm, 1e-30))
        v = v + (clip[:, None] * diff).mean(axis=0)
    return v


# ---- compressors (encode then decode) ----------------------------------------------------------

def sign(v):
    bits = np.packbits(v < 0)
    return 1.0 - 2.0 * np.unpackbits(bits, count=v.size).astype(np.float32)


def topk(v, ratio=0.01):
    k = max(1, round(ratio * v.size))
    idx = np.sort(np.argpartition(np.abs(v), v.size - k)[v.size - k:])
    vals = v[idx]
    out = np.zeros_like(v)
    out[idx] = vals
    return out


def randk(v, rng, ratio=0.01):
    k = max(1, round(ratio * v.size))
    idx = np.sort(rng.choice(v.size, size=k, replace=False))
    vals = v[idx]
    out = np.zeros_like(v)
    out[idx] = vals
    return out


def qsgd(v, rng, s=4):
    norm = np.linalg.norm(v)
    z = np.abs(v) / norm * s
    lev = np.floor(z + rng.random(v.size, dtype=np.float32)).astype(np.int8)
    code = np.where(v < 0, -lev, lev).astype(np.int8)
    return code.astype(np.float32) * (norm / s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="25")
    ap.add_argument("--sizes", default="1e6")
    ap.add_argument("--compress-sizes", default="1.1e7")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    rows = []
    print(f"# numpy {np.__version__}, python {platform.python_version()}, one thread; "
          f"best of {a.repeats}; GB/s = float32 input bytes / time")
    print(f"{'kind':<10} {'name':<12} {'n':>4} {'d':>10} {'ms':>10} {'GB/s':>8}")
    for n in [int(c) for c in a.clients.split(",")]:
        for d in [int(float(s)) for s in a.sizes.split(",")]:
            x = rng.uniform(-1, 1, size=(n, d)).astype(np.float32)
            f = max(1, (n - 3) // 4)
            for name, fn in [("cm", lambda: cm(x)), ("tm", lambda: tm(x, f)),
                             ("krum", lambda: krum(x, f)), ("multikrum", lambda: multikrum(x, f)),
                             ("gm", lambda: gm(x)), ("cclip", lambda: cclip(x))]:
                t, _ = best(a.repeats, fn)
                rows.append(dict(kind="aggregate", name=name, n=n, d=d, ms=t * 1e3,
                                 gbs=4.0 * n * d / t / 1e9))
                print(f"{'aggregate':<10} {name:<12} {n:>4} {d:>10} {t * 1e3:>10.2f} "
                      f"{4.0 * n * d / t / 1e9:>8.3f}", flush=True)
            del x
    for d in [int(float(s)) for s in a.compress_sizes.split(",")]:
        v = rng.standard_normal(d, dtype=np.float32)
        for name, fn in [("sign", lambda: sign(v)), ("topk 1%", lambda: topk(v)),
                         ("randk 1%", lambda: randk(v, rng)), ("qsgd s=4", lambda: qsgd(v, rng))]:
            t, _ = best(a.repeats, fn)
            rows.append(dict(kind="compress", name=name, n=1, d=d, ms=t * 1e3, gbs=4.0 * d / t / 1e9))
            print(f"{'compress':<10} {name:<12} {1:>4} {d:>10} {t * 1e3:>10.2f} "
                  f"{4.0 * d / t / 1e9:>8.3f}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(numpy=np.__version__, rows=rows), fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
