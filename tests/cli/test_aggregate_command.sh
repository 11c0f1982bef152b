#!/usr/bin/env bash
# `cohort aggregate` applies a configured robust rule to user-supplied vectors.
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
honest = [(1, 2), (1.1, 2), (0.9, 2.1), (1, 1.9), (1.2, 2.2), (0.8, 1.8), (1.05, 2.05)]
rows = np.array(honest + [(-5, -5), (-5, -5), (np.nan, 0)], dtype=np.float32)
with h5py.File(f"{sys.argv[1]}/in.h5", "w") as f:
    f["vectors"] = rows
PY
printf 'aggregator: {name: krum, f: 2}\n' > "$TMP/krum.yaml"
printf 'aggregator: {name: cm}\n' > "$TMP/cm.yaml"
"$COHORT" aggregate --config "$TMP/krum.yaml" --input "$TMP/in.h5" --output "$TMP/krum.h5" | tee "$TMP/log"
grep -q "1 dropped as non-finite" "$TMP/log"
"$COHORT" aggregate --config "$TMP/cm.yaml" --input "$TMP/in.h5" --output "$TMP/cm.h5" > /dev/null
"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
tmp = sys.argv[1]
honest = np.array([(1, 2), (1.1, 2), (0.9, 2.1), (1, 1.9), (1.2, 2.2), (0.8, 1.8), (1.05, 2.05)], dtype=np.float32)
rows = np.vstack([honest, [(-5, -5), (-5, -5)]]).astype(np.float64)
with h5py.File(f"{tmp}/krum.h5", "r") as f:
    agg, sel = f["aggregate"][()][0], f["selected"][()]
    assert f.attrs["dropped_nonfinite"] == 1
# Krum (f = 2) over the 9 finite rows: sum of squared distances to the n - f - 2 = 5 nearest.
d2 = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
scores = [np.sort(np.delete(d2[i], i))[:5].sum() for i in range(len(rows))]
best = int(np.argmin(scores))
assert list(sel) == [best], (sel, best)
assert np.array_equal(agg, rows[best].astype(np.float32))
with h5py.File(f"{tmp}/cm.h5", "r") as f:
    agg = f["aggregate"][()][0]
assert np.allclose(agg, np.median(rows, axis=0)), agg
print(f"krum picked row {best}; cm equals numpy's median")
PY
# An attack adds attack.count Byzantine rows: ALIE with z auto for n = 25, f = 5 (z = 0.2533).
"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
with h5py.File(f"{sys.argv[1]}/honest.h5", "w") as f:
    f["vectors"] = np.random.default_rng(1).standard_normal((20, 50)).astype(np.float32)
PY
printf 'aggregator: {name: cm}\nattack: {name: alie, count: 5}\n' > "$TMP/alie.yaml"
"$COHORT" aggregate --config "$TMP/alie.yaml" --input "$TMP/honest.h5" --output "$TMP/alie.h5" > /dev/null
"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
tmp = sys.argv[1]
with h5py.File(f"{tmp}/honest.h5", "r") as f:
    h = f["vectors"][()].astype(np.float64)
with h5py.File(f"{tmp}/alie.h5", "r") as f:
    msgs, agg, byz = f["messages"][()], f["aggregate"][()][0], f["byzantine"][()]
assert list(byz) == [20, 21, 22, 23, 24]
expect = h.mean(0) - 0.253347 * h.std(0, ddof=1)
assert np.allclose(msgs[20:], expect, atol=1e-5), np.abs(msgs[20:] - expect).max()
assert np.allclose(agg, np.median(msgs.astype(np.float64), axis=0), atol=1e-6)
print("alie rows = mu - 0.2533 sigma; cm over all 25 rows equals numpy's median")
PY

# minmax and minsum: mu - gamma sigma with the largest feasible gamma; checked against the
# papers' own bisection on the same 20 honest rows.
for a in minmax minsum; do
  printf 'aggregator: {name: tm, b: 5}\nattack: {name: %s, count: 5}\n' "$a" > "$TMP/$a.yaml"
  "$COHORT" aggregate --config "$TMP/$a.yaml" --input "$TMP/honest.h5" --output "$TMP/$a.h5" > /dev/null
done
"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
tmp = sys.argv[1]
with h5py.File(f"{tmp}/honest.h5", "r") as f:
    h = f["vectors"][()].astype(np.float64)
mu, sd = h.mean(0), h.std(0, ddof=1)
pair = ((h[:, None, :] - h[None, :, :]) ** 2).sum(-1)
checks = {"minmax": lambda m: ((m - h) ** 2).sum(1).max() <= pair.max(),
          "minsum": lambda m: ((m - h) ** 2).sum() <= pair.sum(1).max()}
for name, ok in checks.items():
    lam, step, succ = 10.0, 10.0, 0.0
    while abs(succ - lam) > 1e-10:
        if ok(mu - lam * sd):
            succ, lam = lam, lam + step / 2
        else:
            lam -= step / 2
        step /= 2
    with h5py.File(f"{tmp}/{name}.h5", "r") as f:
        msgs = f["messages"][()]
    assert np.allclose(msgs[20:], mu - succ * sd, atol=1e-5), (name, succ)
    print(f"{name}: gamma = {succ:.6f} as the papers' bisection finds")
PY

set +e
msg=$("$COHORT" aggregate --config "$TMP/krum.yaml" --input "$TMP/in.h5" --output "$TMP/x.h5" aggregator.f=4 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "2f+3" <<< "$msg" || { echo "FAIL ($rc): $msg"; exit 1; }
echo "aggregate command: all checks passed"
