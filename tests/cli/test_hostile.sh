#!/usr/bin/env bash
# Hostile inputs end in a usage error (exit 2, one message naming the key, file or line and the
# numbers), never in a signal, std::bad_alloc or a silently wrapped size; and validate rejects
# what run rejects. Classes (each a table, not one example): sizes that overflow or wrap,
# allocations sized by the input, degenerate inputs to the offline commands, validate vs run.
set -euo pipefail
: "${SRC:?}"
CFG="$SRC/configs/quadratic_drift.yaml"
source "$SRC/tests/cli/lib.sh"
cd "$TMP"
C=("$COHORT")
out="output: {path: $TMP/out.h5}"
printf '%s\n' "data: {name: quadratic, dim: 2}" "$out" > quad.yaml

# ---- 1. sizes that overflow or wrap ---------------------------------------------------------
for index in 4611686018427387904 1099511627776 9223372036854775807 9223372036854775808 \
  184467440737095516170; do
  printf '1 %s:1\n0 1:1\n' "$index" > "i$index.svm"
  printf '%s\n' "data: {name: libsvm, path: i$index.svm}" "$out" > "i$index.yaml"
  expect_usage "libsvm_$index" "i$index.svm:1: index" "${C[@]}" validate "i$index.yaml"
done
for kv in clients.num_clients=4294967297 rounds=2147483648 clients.per_round=4294967296 \
  eval.chunk=9999999999 algorithm.local_steps=4294967297 comm.memory_budget_mib=8796093022208 \
  output.progress_every=2147483648 seed=9223372036854775808 attack.count=4294967297; do
  key=${kv%%=*}
  expect_usage "key_$key" "$key = '${kv#*=}' is not allowed" "${C[@]}" validate quad.yaml "$kv"
  expect_usage "key_$key.holds" "the key holds at most" "${C[@]}" run quad.yaml "$kv"
done
expect_usage key_hidden "model.hidden = '[2147483648]' is not allowed" "${C[@]}" validate quad.yaml \
  model.name=mlp 'model.hidden=[2147483648]'
expect_usage key_tm_b "aggregator.b = '4294967297' is not allowed" "${C[@]}" validate quad.yaml \
  aggregator.name=tm aggregator.b=4294967297

# ---- 2. allocations sized by the input ------------------------------------------------------
fed="data: {name: synthetic_fedprox, dim: 784}"
for hidden in '[100000000]' '[2147483647]' '[65536, 65536, 65536]'; do
  printf '%s\n' "$fed" "model: {name: mlp, hidden: $hidden}" "$out" > mlp.yaml
  expect_usage "mlp_$hidden" "parameters, estimated from its largest buffers) needs" "${C[@]}" validate mlp.yaml
  expect_usage "mlp_run_$hidden" "more than the" "${C[@]}" run mlp.yaml
done
expect_usage quad_dim "data.name = quadratic (2000 clients x dim 2000000000) needs" \
  "${C[@]}" validate quad.yaml data.dim=2000000000 clients.num_clients=2000
expect_usage linear_rows "synthetic_linear (100000 clients x" "${C[@]}" validate quad.yaml \
  data.name=synthetic_linear clients.num_clients=100000 data.samples_per_client=100000000
# IDX headers promising far more than the file holds (gzip), read through data.path.
mkdir -p idx
"$PYTHON" - "$TMP/idx" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
def write(name, magic, dims, payload=b"\x01" * 16):
    with gzip.open(f"{d}/{name}", "wb") as f:
        f.write(struct.pack(">I" + "I" * len(dims), magic, *dims) + payload)
write("train-images-idx3-ubyte.gz", 0x803, [1000000000, 28, 28])
write("train-labels-idx1-ubyte.gz", 0x801, [4294967295])
write("t10k-images-idx3-ubyte.gz", 0x803, [1, 28, 28])
write("t10k-labels-idx1-ubyte.gz", 0x801, [1])
PY
printf '%s\n' "data: {name: fashion_mnist, path: $TMP/idx}" "$out" > idx.yaml
expect_usage idx_header "train-images-idx3-ubyte.gz (1000000000 images of 28 x 28 pixels) needs" \
  "${C[@]}" validate idx.yaml
# HDF5 inputs whose declared shape exceeds memory (compressed, so the file is small).
"$PYTHON" - "$TMP" <<'PY'
import sys, h5py, numpy as np
t = sys.argv[1]
def w(name, shape, **kw):
    with h5py.File(f"{t}/{name}.h5", "w") as f:
        if kw: f.create_dataset("vectors", shape=shape, dtype=np.float32, **kw)
        else: f["vectors"] = np.ones(shape, np.float32)
w("huge", (2**31 - 1, 2**20), chunks=(1, 16), compression="gzip")
w("huge3", (2**20, 2**20, 2**20), chunks=(1, 1, 16), compression="gzip")
w("long", (2**31, 1), chunks=(1, 1), compression="gzip")
w("e0", (0, 4)); w("d0", (3, 0)); w("t0", (2, 0, 3)); w("one", (1, 4))
PY
printf 'aggregator: {name: cm}\n' > cm.yaml
printf 'compressor: {name: topk}\n' > topk.yaml
expect_usage h5_huge_aggregate "(shape 2147483647 x 1048576, float32, 2 copies) needs" \
  "${C[@]}" aggregate --config cm.yaml --input huge.h5 --output a.h5
expect_usage h5_huge_compress "(shape 2147483647 x 1048576, float32, 2 copies) needs" \
  "${C[@]}" compress --config topk.yaml --input huge.h5 --output c.h5
expect_usage h5_huge3_compress "overflows" "${C[@]}" compress --config topk.yaml --input huge3.h5 \
  --output c.h5
expect_usage h5_long "every dimension must be at most 2147483647" "${C[@]}" aggregate \
  --config cm.yaml --input long.h5 --output a.h5
expect_usage aggregate_count "exceed 2147483647 messages" "${C[@]}" aggregate --config cm.yaml \
  --input one.h5 --output a.h5 attack.name=zero attack.count=2147483647
expect_usage aggregate_round "--round" "${C[@]}" aggregate --config cm.yaml --input one.h5 \
  --output a.h5 --round -1

# ---- 3. degenerate inputs to the offline commands --------------------------------------------
for input in e0 d0; do
  for attack in none signflip gaussian zero nonfinite ipm alie mimic minmax minsum; do
    expect_usage "aggregate_${input}_$attack" "in '$input.h5' is empty" "${C[@]}" aggregate \
      --config cm.yaml --input "$input.h5" --output a.h5 attack.name=$attack attack.count=1
  done
done
for input in e0 d0 t0; do
  for comp in none sign topk randk qsgd powersgd; do
    expect_usage "compress_${input}_$comp" "in '$input.h5' is empty" "${C[@]}" compress \
      --config topk.yaml --input "$input.h5" --output c.h5 compressor.name=$comp
  done
done
# One honest row: an omniscient attack has a defined message only where its rule allows it.
expect_usage aggregate_one_alie "alie z: auto is undefined for n = 2, f = 1" "${C[@]}" aggregate \
  --config cm.yaml --input one.h5 --output a.h5 attack.name=alie attack.count=1
"${C[@]}" aggregate --config cm.yaml --input one.h5 --output a.h5 attack.name=ipm attack.count=1 \
  > /dev/null
"${C[@]}" aggregate --config cm.yaml --input one.h5 --output a.h5 attack.name=alie attack.z=1.5 \
  attack.count=1 > /dev/null
"${C[@]}" compress --config topk.yaml --input one.h5 --output c.h5 > /dev/null
# Empty test sets: a run would report NaN test metrics.
printf '1 1:1 2:3\n' > one.svm
expect_usage libsvm_one_row "gives an empty test set (1 training rows)" "${C[@]}" run quad.yaml \
  data.name=libsvm data.path=one.svm clients.num_clients=1
expect_usage linear_no_test "gives an empty test set" "${C[@]}" validate quad.yaml \
  data.name=synthetic_linear data.samples_per_client=1

# ---- 4. validate makes every check run makes ------------------------------------------------
same_error() {  # NAME EXPECTED OVERRIDES...: validate, run and a 2-rank run print the same error
  local name=$1 want=$2
  shift 2
  expect_usage "$name.validate" "$want" "${C[@]}" validate quad.yaml "$@"
  expect_usage "$name.run" "$want" "${C[@]}" run quad.yaml "$@"
  expect_usage "$name.np2" "$want" "${MPI[@]}" -n 2 "$COHORT" run quad.yaml "$@"
  if ! diff <(grep '^cohort: error' "$TMP/$name.validate.err") \
    <(grep '^cohort: error' "$TMP/$name.run.err") > /dev/null; then
    echo "FAIL $name: validate and run print different errors"
    failures=$((failures + 1))
  fi
}
for n in 1 3 10; do
  same_error "count_$n" "attack.count = $((n + 5)) exceeds clients.num_clients = $n" \
    clients.num_clients=$n attack.name=signflip attack.count=$((n + 5))
done
same_error alie_two "alie z: auto is undefined for n = 2, f = 1" clients.num_clients=2 \
  attack.name=alie attack.count=1
same_error alie_half "alie z: auto is undefined for n = 5, f = 3" clients.num_clients=5 \
  attack.name=alie attack.count=3
same_error ipm_all "none is sampled" clients.num_clients=3 attack.name=ipm attack.count=3
same_error mimic_sampled "of which 1 are Byzantine" clients.num_clients=4 clients.per_round=1 \
  attack.name=mimic attack.count=2 rounds=50
"${C[@]}" validate quad.yaml clients.num_clients=5 attack.name=alie attack.count=2 > /dev/null

if [ "$failures" -gt 0 ]; then
  echo "test_hostile: $failures failure(s)"
  exit 1
fi
echo "test_hostile: every hostile input ended in a usage error"
