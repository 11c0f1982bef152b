#!/usr/bin/env bash
# Secure aggregation in full runs (Note [Secure aggregation]): rounds that abort below the
# threshold are recorded, leave the model unchanged and are the same at -np 1, 2 and 4; the
# protocol's columns are recorded; without DP noise and dropouts the model equals the plain run's
# within the fixed point's error.
set -euo pipefail
CFG="$SRC/tests/configs/secagg.yaml"
source "$SRC/tests/cli/lib.sh"

# Every round aborts (t = the Poisson bound of 30 clients): the model never moves, whatever the
# rank count, and rank 0 alone warns once a round.
same_at_1_2_4 all_abort secagg.threshold=30 rounds=2
grep -c "secure aggregation aborted" "$TMP/all_abort.np4.log" > /dev/null && {
  echo "FAIL: the abort warning went to stdout"
  exit 1
}
"${MPI[@]}" -n 2 "$COHORT" run "$CFG" secagg.threshold=30 rounds=2 output.path="$TMP/abort_err.h5" \
  output.progress_every=0 > /dev/null 2> "$TMP/abort_err.err"
n=$(grep -c "cohort: warning: round [12]: secure aggregation aborted" "$TMP/abort_err.err")
[ "$n" -eq 2 ] || { echo "FAIL: $n abort warnings, expected 2 (one per round, rank 0 only)"; exit 1; }
run all_abort_1round 1 secagg.threshold=30 rounds=1
# Some rounds abort, some unmask (threshold 5 of about 9 clients, 30% dropouts before delivery
# and 20% after).
same_at_1_2_4 some_abort secagg.threshold=5 secagg.dropout=0.3 secagg.late_dropout=0.2 rounds=6

# Without DP: secagg against the plain exchange, one round, no dropouts, a clip that never binds.
plain=("privacy={name: none}" clients.sampling=uniform clients.per_round=10 rounds=1)
run plain 1 "${plain[@]}" "secagg={name: none}"
run masked 2 "${plain[@]}" secagg.threshold=0 secagg.dropout=0 secagg.clip=100

"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
tmp = sys.argv[1]

def model(f):
    return np.concatenate([f["model"][k][()].ravel() for k in sorted(f["model"])])

with h5py.File(f"{tmp}/all_abort.np1.h5", "r") as a, \
        h5py.File(f"{tmp}/all_abort_1round.np1.h5", "r") as b:
    assert a.attrs["status"] == "completed"
    r = a["rounds"]
    assert (r["secagg_aborted"][()] == 1).all()
    assert (r["secagg_survivors"][()] < 30).all()
    assert (r["secagg_threshold"][()] == 30).all()
    # the model after 2 aborted rounds is the one after 1: neither moved it
    assert np.array_equal(model(a), model(b)), "an aborted round changed the model"
    assert r["test_loss"][-1] == b["rounds"]["test_loss"][-1]

with h5py.File(f"{tmp}/some_abort.np1.h5", "r") as f:
    r = f["rounds"]
    ab = r["secagg_aborted"][()]
    assert 0 < ab.sum() < len(ab), f"expected some aborted rounds, got {ab}"
    surv, n, t = r["secagg_survivors"][()], r["clients"][()], r["secagg_threshold"][()]
    resp = r["secagg_responders"][()]
    assert ((resp < t) == (ab == 1)).all()  # aborted exactly when fewer than t answered
    assert (resp <= surv).all() and (resp < surv).any()
    assert (surv <= n).all() and (surv < n).any()
    # bytes: at least the masked vector of every survivor, and the server receives what the
    # clients send
    d = f.attrs["num_params"]
    sent, got = r["secagg_client_bytes_sent"][()], r["secagg_server_bytes_received"][()]
    assert np.allclose(sent * n, got)
    assert (got >= 4 * d * surv).all()
    assert np.allclose(r["uplink_bits"][()], 8 * got)
    for k in ("keys", "shares", "masking", "unmasking"):
        assert (r[f"time_secagg_{k}"][()] >= 0).all()
    assert len(set(r["secagg_transcript"][()])) == len(ab)  # a digest per round

with h5py.File(f"{tmp}/plain.np1.h5", "r") as p, h5py.File(f"{tmp}/masked.np2.h5", "r") as m:
    assert m.attrs["secagg"].startswith("bonawitz")
    f = int(m.attrs["secagg_fraction_bits"])
    assert f == 21, f  # 10 clients x C = 100: 1000 2^21 < 2^31 <= 1000 2^22
    a, b = model(p), model(m)
    # the mean of 10 quantized updates is within 2^-(f+1) of the exact mean; the server step
    # (lr 1) and float32 rounding add at most a few ulps
    bound = 2.0 ** -(f + 1) + 4 * np.finfo(np.float32).eps * np.maximum(np.abs(a), 1e-30)
    diff = np.abs(a - b)
    assert (diff <= bound).all(), f"largest excess {np.max(diff - bound)}"
    assert diff.max() > 0  # quantized: not the same bits
    assert m["rounds"]["secagg_survivors"][0] == 10 and m["rounds"]["secagg_aborted"][0] == 0
print("secagg runs: aborts, columns and the plain comparison hold")
PY
echo "ok: secagg runs"
