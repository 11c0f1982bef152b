#!/usr/bin/python3
"""The peer of cohort's fused PowerSGD step: what PyTorch's DDP PowerSGD communication hook does
for one tensor of one worker, written with torch operations, one thread.

Per call, on an m x n float32 gradient M with error memory e and the warm-started Q (n x r):
  1. M += e                      (the hook adds the error memory in place)
  2. keep a copy of M            (the hook clones it to compute the new error later; here it is
                                  copied into a buffer kept across calls, which spares the peer
                                  the page faults of a fresh 4 m n-byte allocation every call)
  3. P = M Q
  4. orthogonalise P's columns   (Gram-Schmidt: divide a column by its norm + eps, then take its
                                  component out of every later column)
  5. Q = M^T P
  6. M = P Q^T                   (the hook writes the approximation over the gradient)
  7. e = copy - M
The all-reduces between the steps are left out (one worker), as cohort's per-client step has
none. --orthogonalize qr uses torch.linalg.qr for r > 2 instead, which torch's hook picks for
float32 at those ranks; Gram-Schmidt is what docs/algorithms.md and cohort use.

GB/s counts the float32 bytes of M once per call (4 m n / seconds), as `cohort bench compress`
does for its "powersgd ef" rows. Times are the best of --repeats.

Debian's torch calls whatever libblas.so.3 resolves to, by default the slow reference BLAS;
scripts/bench_powersgd.sh also runs it with OpenBLAS first on LD_LIBRARY_PATH. The library in
use is printed.

    /usr/bin/python3 scripts/bench_powersgd_peer.py --json results/bench_powersgd_peer.json
"""
import argparse
import json
import os
import platform
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
import torch  # noqa: E402  (after the thread settings)

EPS = 1e-8


def gram_schmidt(p):
    """Columns in order: normalise (norm + EPS), then remove the column's component from the
    later ones. In place."""
    r = p.shape[1]
    for j in range(r):
        col = p[:, j:j + 1]
        col.div_(torch.linalg.vector_norm(col) + EPS)
        if j + 1 < r:
            later = p[:, j + 1:]
            later.sub_(col * (col * later).sum(dim=0, keepdim=True))


def qr_in_place(p):
    q, _ = torch.linalg.qr(p)
    p.copy_(q)


class Worker:
    """One tensor's state across calls: the error memory and the warm-started Q."""

    def __init__(self, rows, cols, rank, orthogonalize, seed):
        g = torch.Generator().manual_seed(seed)
        self.m_in = torch.randn(rows, cols, generator=g)  # the gradient of this step
        self.m = torch.empty(rows, cols)
        self.e = torch.zeros(rows, cols)
        self.q = torch.randn(cols, rank, generator=g)
        self.p = torch.empty(rows, rank)
        self.kept = torch.empty(rows, cols)
        self.orth = gram_schmidt if orthogonalize == "gram-schmidt" or rank <= 2 else qr_in_place

    def refill(self):
        self.m.copy_(self.m_in)  # a fresh gradient (not timed)

    def step(self):
        m, e, p, q, kept = self.m, self.e, self.p, self.q, self.kept
        m.add_(e)                        # 1
        kept.copy_(m)                    # 2
        torch.matmul(m, q, out=p)        # 3
        self.orth(p)                     # 4
        torch.matmul(m.t(), p, out=q)    # 5
        torch.matmul(p, q.t(), out=m)    # 6
        torch.sub(kept, m, out=e)        # 7


def blas_library():
    """The BLAS shared library this process has mapped (torch's matmul calls it): Debian's torch
    uses whatever libblas.so.3 resolves to, the reference BLAS unless an optimised one is
    installed or put first on LD_LIBRARY_PATH."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    return ", ".join(sorted(paths)) or "none mapped"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="512x4608,3125x3520")
    ap.add_argument("--ranks", default="1,2,4,8")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--orthogonalize", choices=["gram-schmidt", "qr"], default="gram-schmidt")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows_out = []
    print(f"# PowerSGD hook steps in torch {torch.__version__}, {torch.get_num_threads()} thread, "
          f"python {platform.python_version()}; orthogonalisation: {a.orthogonalize} "
          f"(gram-schmidt at r <= 2 either way); best of {a.repeats}")
    torch.matmul(torch.ones(2, 2), torch.ones(2, 2))  # loads the BLAS library
    print(f"# BLAS: {blas_library()}")
    print(f"{'shape':>12} {'r':>3} {'ms':>10} {'GB/s':>8}")
    for shape in a.shapes.split(","):
        rows, cols = (int(x) for x in shape.split("x"))
        for rank in (int(x) for x in a.ranks.split(",")):
            w = Worker(rows, cols, rank, a.orthogonalize, seed=1)
            best = float("inf")
            for _ in range(a.repeats + 1):  # the first call touches the buffers' pages
                w.refill()
                t0 = time.perf_counter()
                w.step()
                best = min(best, time.perf_counter() - t0)
            gbs = 4.0 * rows * cols / best / 1e9
            print(f"{shape:>12} {rank:>3} {best * 1e3:>10.3f} {gbs:>8.2f}", flush=True)
            rows_out.append({"rows": rows, "cols": cols, "rank": rank, "ms": best * 1e3,
                             "gbs": gbs})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
                       "orthogonalize": a.orthogonalize, "repeats": a.repeats,
                       "blas": blas_library(),
                       "config": torch.__config__.show(), "rows": rows_out}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
