#!/usr/bin/env bash
# `cohort attack-privacy` (docs/algorithms.md §6): gradient inversion recovers one sample's input
# exactly without DP, reports a large error under dp_sgd's and dp_fedavg's noise and a mixture for
# a batch; its file holds the originals and the reconstruction; membership inference reads a
# finished run's final model and reports an AUC that the file's own losses confirm.
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
dp="$SRC/tests/configs/dp.yaml"  # synthetic data, mlp with a dense first layer

# relative_error FILE: the reconstruction's relative L2 error against the nearest sample.
relative_error() {
  "$PYTHON" -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r").attrs["relative_error"])' "$1"
}
"$COHORT" attack-privacy invert --config "$dp" "privacy={name: none}" --client 3 --out none.h5 | tee none.log
grep -q "relative L2 error" none.log
"$PYTHON" - none.h5 <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    x, r = f["/inversion/original"][()], f["/inversion/reconstructed"][()]
    assert x.shape == r.shape == (1, 20), (x.shape, r.shape)
    err = np.linalg.norm(r - x) / np.linalg.norm(x)
    assert err < 1e-5 and abs(err - f.attrs["relative_error"]) < 1e-9, err
    assert f.attrs["status"] == "completed"
PY
for priv in "privacy={name: dp_sgd, clip: 1, noise_multiplier: 1, sample_rate: 0.5}" \
            "privacy={name: dp_fedavg, clip: 0.5, noise_multiplier: 1}"; do
  "$COHORT" attack-privacy invert --config "$dp" "$priv" --client 3 --out noisy.h5 > noisy.log
  e=$(relative_error noisy.h5)
  "$PYTHON" -c "import sys; assert float(sys.argv[1]) > 0.3, sys.argv[1]" "$e" ||
    { echo "FAIL: $priv: relative error $e, expected the noise to defeat the inversion"; exit 1; }
done
"$COHORT" attack-privacy invert --config "$dp" "privacy={name: none}" --client 3 --batch 5 \
  --out batch.h5 > batch.log
"$PYTHON" - batch.h5 <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    x, r = f["/inversion/original"][()], f["/inversion/reconstructed"][()][0]
    rel = f["/inversion/relative_error"][()]
    want = np.linalg.norm(r - x, axis=1) / np.linalg.norm(x, axis=1)
    assert x.shape == (5, 20) and np.allclose(rel, want, rtol=1e-5), (rel, want)
    assert rel.min() > 1e-3 and f.attrs["nearest"] == rel.argmin()
PY

# A conv-first model is refused.
set +e
"$COHORT" attack-privacy invert --config "$SRC/configs/cnn_mnist.yaml" --out cnn.h5 2> cnn.err
rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q "needs a fully connected first layer" cnn.err ||
  { echo "FAIL: conv-first model: exit $rc, $(cat cnn.err)"; exit 1; }

# Membership: a run that keeps its final model gives an AUC over 100 members and 100
# non-members (its exact value is checked by the unit tests); without a model it is refused.
"$COHORT" run "$dp" "privacy={name: none}" output.path=run.h5 output.save_model=true \
  output.progress_every=0 > run.log
"$COHORT" attack-privacy membership --run run.h5 --samples 100 | tee mem.log
"$PYTHON" - mem.log <<'PY'
import re, sys
m = re.search(r"AUC ([0-9.]+) \((\d+) members.*; (\d+) non-members", open(sys.argv[1]).read())
assert m and 0 <= float(m.group(1)) <= 1 and m.group(2) == "100" and m.group(3) == "100", m
PY
"$COHORT" run "$dp" "privacy={name: none}" output.path=nomodel.h5 output.save_model=false \
  output.progress_every=0 > run2.log
set +e
"$COHORT" attack-privacy membership --run nomodel.h5 2> mem.err
rc=$?
set -e
[[ $rc -eq 2 ]] && grep -q "holds no final model" mem.err ||
  { echo "FAIL: membership without a model: exit $rc, $(cat mem.err)"; exit 1; }
echo "attack-privacy: inversion and membership checks passed"
