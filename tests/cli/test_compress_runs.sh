#!/usr/bin/env bash
# Every compressor, with and without error feedback, gives bitwise-identical runs at -np 1, 2
# and 4, and the gather plan gives the same results as the reduce plan.
set -euo pipefail
CFG="$SRC/tests/configs/invariance_compress.yaml"
source "$SRC/tests/cli/lib.sh"

cases=(
  "sign|compressor.name=sign"
  "sign_l1_ef|compressor.name=sign compressor.scale=l1 compressor.error_feedback=true"
  "majority|compressor.name=sign aggregator.name=majority server_optimizer.lr=0.01"
  "topk_ef|compressor.name=topk compressor.ratio=0.1 compressor.error_feedback=true"
  "topk_global|compressor.name=topk compressor.k=30 compressor.scope=global"
  "randk_unbiased|compressor.name=randk compressor.ratio=0.2 compressor.unbiased=true"
  "randk_ef|compressor.name=randk compressor.ratio=0.2 compressor.error_feedback=true"
  "qsgd|compressor.name=qsgd compressor.levels=4"
  "qsgd_elias_bucket|compressor.name=qsgd compressor.levels=16 compressor.coding=elias compressor.bucket=32 compressor.norm=max"
  "powersgd_reduce_ef|compressor.name=powersgd compressor.rank=2 compressor.error_feedback=true"
  "powersgd_per_client|compressor.name=powersgd compressor.rank=1 compressor.mode=per_client"
  "powersgd_per_client_ef|compressor.name=powersgd compressor.rank=2 compressor.mode=per_client compressor.error_feedback=true"
  "downlink_topk|downlink_compressor.name=topk downlink_compressor.ratio=0.2"
)
for c in "${cases[@]}"; do
  name=${c%%|*}
  read -r -a overrides <<< "${c#*|}"
  same_at_1_2_4 "$name" "${overrides[@]}"
  if [[ $name != powersgd_reduce* ]]; then  # PowerSGD in mode reduce has no gather form
    run "$name.gather" 2 "${overrides[@]}" comm.plan=gather
    cmp --ignore-config "$TMP/$name.np1.h5" "$TMP/$name.gather.np2.h5"
  fi
  echo "ok: $name (np 1 = 2 = 4, gather = reduce)"
done

# Bits are the encoded sizes: sign without scale sends exactly one bit per coordinate.
"$PYTHON" - "$TMP/sign.np1.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    d = int(f.attrs["num_params"])
    # Rows of the sampled clients only, aligned with /clients/sampled (sorted ids, distinct).
    per_client, sampled = f["clients/uplink_bits"][()], f["clients/sampled"][()]
    assert per_client.shape == sampled.shape == (len(f["rounds/round"]), 5), per_client.shape
    assert (per_client == d).all(), per_client
    assert (per_client.sum(axis=1) == f["rounds/uplink_bits"][()]).all()
    assert (sampled[:, 1:] > sampled[:, :-1]).all() and sampled.min() >= 0
    assert (f["rounds/uplink_bits"][()] == 5 * d).all()
    assert (f["rounds/downlink_bits"][()] == 5 * 32 * d).all()
print("sign: 1 bit per coordinate per client")
PY

# An impossible combination is a config error that says what works.
set +e
msg=$("$COHORT" validate "$CFG" compressor.name=powersgd aggregator.name=majority 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "majority votes on signs" <<< "$msg"
msg=$("$COHORT" validate "$CFG" compressor.name=powersgd comm.plan=gather 2>&1) && exit 1
grep -q "use comm.plan = reduce" <<< "$msg"
echo "compressed runs: all checks passed"
