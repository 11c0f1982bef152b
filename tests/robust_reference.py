#!/usr/bin/python3
"""Expected values of the robust aggregators (docs/algorithms.md §3) on a small 2-D example,
in float64.

tests/unit/test_robust.cpp hard-codes this script's output (TEST_CASEs "robust: ..."). Run with
/usr/bin/python3 (needs numpy):  /usr/bin/python3 tests/robust_reference.py
"""
import numpy as np

np.set_printoptions(precision=17)
HONEST = [(1, 2), (1.1, 2), (0.9, 2.1), (1, 1.9), (1.2, 2.2), (0.8, 1.8), (1.05, 2.05)]
U = np.array(HONEST + [(-5, -5), (-5, -5)], dtype=np.float64)  # n = 9, rows 7 and 8 outliers
U11 = np.array(HONEST + [(1.04, 1.97), (0.97, 2.04), (-5, -5), (-5, -5)], dtype=np.float64)


def cm(u):
    return np.median(u, axis=0)


def tm(u, b):
    s = np.sort(u, axis=0)
    return s[b:len(u) - b].mean(axis=0)


def krum_scores(u, f, subset=None):
    idx = list(range(len(u))) if subset is None else subset
    k = max(0, len(idx) - f - 2)
    out = []
    for i in idx:
        d = sorted(float(np.sum((u[i] - u[j]) ** 2)) for j in idx if j != i)
        out.append(sum(d[:k]))
    return out


def multikrum(u, f, m=None):
    m = len(u) - f if m is None else m
    sc = krum_scores(u, f)
    order = sorted(range(len(u)), key=lambda i: (sc[i], i))
    return u[sorted(order[:m])].mean(axis=0), sorted(order[:m])


def gm(u, iters, nu, z0):
    z = z0.copy()
    for _ in range(iters):
        beta = np.array([(1 / len(u)) / max(nu, np.linalg.norm(z - x)) for x in u])
        z = (beta[:, None] * u).sum(axis=0) / beta.sum()
    return z


def cclip(u, tau, iters, v0):
    v = v0.copy()
    for _ in range(iters):
        step = np.zeros_like(v)
        for x in u:
            dist = np.linalg.norm(x - v)
            step += (x - v) * (min(1.0, tau / dist) if dist > 0 else 1.0)
        v = v + step / len(u)
    return v


def bulyan(u, f):
    n = len(u)
    theta = n - 2 * f
    rest, chosen = list(range(n)), []
    for _ in range(theta):
        sc = krum_scores(u, f, rest)
        best = min(range(len(rest)), key=lambda a: (sc[a], rest[a]))
        chosen.append(rest.pop(best))
    chosen.sort()
    beta = theta - 2 * f
    sel = u[chosen]
    out = []
    for k in range(u.shape[1]):
        v = np.sort(sel[:, k])
        med = np.median(v)
        keep = sorted(range(theta), key=lambda r: (abs(v[r] - med), v[r]))[:beta]
        out.append(v[keep].mean())
    return np.array(out), chosen


# Philox4x32-10 and Rng::below / shuffle of src/core/rng.h.
M = 0xFFFFFFFF


def philox(ctr, k0, k1):
    c0, c1, c2, c3 = ctr
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        n0 = (p1 >> 32) ^ c1 ^ k0
        n2 = (p0 >> 32) ^ c3 ^ k1
        c1, c3, c0, c2 = p1 & M, p0 & M, n0 & M, n2 & M
        k0 = (k0 + 0x9E3779B9) & M
        k1 = (k1 + 0xBB67AE85) & M
    return [c0, c1, c2, c3]


class Rng:
    def __init__(self, seed, rnd, client, purpose):
        self.k0, self.k1 = seed & M, seed >> 32
        self.rnd, self.client, self.purpose = rnd, client, purpose
        self.index, self.buf = 0, []

    def u32(self):
        if not self.buf:
            self.buf = philox([self.index, self.rnd, self.client, self.purpose], self.k0, self.k1)
            self.index += 1
        return self.buf.pop(0)

    def u64(self):
        hi = self.u32()
        return (hi << 32) | self.u32()

    def below(self, n):
        limit = n * ((2**64 - 1) // n)
        while True:
            v = self.u64()
            if v < limit:
                return v % n

    def shuffle(self, v):
        for i in range(len(v), 1, -1):
            j = self.below(i)
            v[i - 1], v[j] = v[j], v[i - 1]


def bucket_means(u, s, seed, rnd):
    perm = list(range(len(u)))
    Rng(seed, rnd, 0xFFFFFFFF, 9).shuffle(perm)
    means = np.array([u[perm[g:g + s]].mean(axis=0) for g in range(0, len(u), s)])
    return perm, means


def show(name, v):
    print(f"{name}: {np.array2string(np.asarray(v, dtype=np.float64), separator=', ')}")


show("cm", cm(U))
show("tm b=2", tm(U, 2))
sc = krum_scores(U, 2)
show("krum scores f=2", sc)
print("krum pick f=2:", min(range(9), key=lambda i: (sc[i], i)))
mk, mk_sel = multikrum(U, 2)
show("multikrum f=2 mean", mk)
print("multikrum f=2 selected:", mk_sel)
show("gm T=3 nu=0.1 z0=0", gm(U, 3, 0.1, np.zeros(2)))
show("gm T=8 nu=0.1 z0=0", gm(U, 8, 0.1, np.zeros(2)))
show("gm T=200 nu=0.1 z0=0", gm(U, 200, 0.1, np.zeros(2)))
show("gm T=3 nu=0.1 z0=mean", gm(U, 3, 0.1, U.mean(axis=0)))
show("cclip L=1 tau=1 v0=0", cclip(U, 1.0, 1, np.zeros(2)))
show("cclip L=3 tau=1 v0=0", cclip(U, 1.0, 3, np.zeros(2)))
v1 = cclip(U, 1.0, 1, np.zeros(2))
show("cclip second call L=1 tau=1 from the first", cclip(U, 1.0, 1, v1))
perm, means = bucket_means(U, 2, seed=42, rnd=3)
print("bucketing seed=42 round=3 permutation:", perm)
show("bucketing s=2 bucket means", means)
show("bucketing s=2 cm", cm(means))
b, b_sel = bulyan(U11, 2)
show("bulyan n=11 f=2", b)
print("bulyan selected:", b_sel)
ystar, x, gamma, rho = np.array([1.0, 2.0]), np.array([2.0, 4.0]), 0.1, 5e-4
L = lambda y: 0.5 * np.sum((y - ystar) ** 2)
zs = [L(x) - L(x - gamma * u) - rho * np.sum(u * u) for u in U]
show("zeno scores", zs)
order = sorted(range(9), key=lambda i: (-zs[i], i))
keep = sorted(order[:7])
print("zeno b=2 selected:", keep)
show("zeno b=2 mean", U[keep].mean(axis=0))

# minmax / minsum (Shejwalkar & Houmansadr 2021) on the attack test's honest set, by the papers'
# own search (bisection from gamma = 10, here to 1e-12) rather than the closed form cohort uses.
H = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])
mu, sd = H.mean(axis=0), H.std(axis=0, ddof=1)
pair = np.array([[np.sum((a - b) ** 2) for b in H] for a in H])


def search(ok):
    lam, step, succ = 10.0, 10.0, 0.0
    while abs(succ - lam) > 1e-12:
        if ok(mu - lam * sd):
            succ = lam
            lam += step / 2
        else:
            lam -= step / 2
        step /= 2
    return succ


g_minmax = search(lambda m: max(np.sum((m - h) ** 2) for h in H) <= pair.max())
g_minsum = search(lambda m: sum(np.sum((m - h) ** 2) for h in H) <= pair.sum(axis=1).max())
print(f"minmax gamma: {g_minmax!r} message: {list(mu - g_minmax * sd)!r}")
print(f"minsum gamma: {g_minsum!r} message: {list(mu - g_minsum * sd)!r}")
