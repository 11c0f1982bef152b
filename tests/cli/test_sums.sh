#!/usr/bin/env bash
# Message sums and kernel paths (Note [Deterministic sums], Note [One ISA decision]):
#  - every ISA path this CPU has (COHORT_ISA) gives bitwise the same run, with compressors
#    (PowerSGD in both modes among them) and a robust rule whose kernels have SIMD paths;
#  - a path the CPU lacks, or an unknown name, is a usage error (exit 2) that names the paths;
#  - comm.sum = float runs, says in the results file that it depends on the rank count, and lands
#    close to the exact sums;
#  - the sums stay rank-invariant when message values outgrow their blocks' scales (a weighted
#    mean whose weights are sample counts: values far above the first scale of 1).
set -euo pipefail
: "${COHORT:?} ${MPIEXEC:?} ${PYTHON:?} ${SRC:?}"
CFG="$SRC/configs/quickstart.yaml"
source "$SRC/tests/cli/lib.sh"
# An MLP of 25,450 parameters (seven 4096-coordinate blocks), two short rounds.
small=(rounds=2 clients.num_clients=8 clients.per_round=5 algorithm.local_steps=3
       algorithm.local_epochs=0 model.hidden=[32] eval.every=2)

paths=(generic)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && paths+=(avx2)
grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo &&
  grep -qw avx512dq /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && paths+=(avx512)
for case in "qsgd:compressor.name=qsgd compressor.error_feedback=true" \
            "topk:compressor.name=topk compressor.ratio=0.3 compressor.error_feedback=true" \
            "powersgd:compressor.name=powersgd compressor.mode=per_client compressor.rank=4 compressor.error_feedback=true" \
            "powersgd_reduce:compressor.name=powersgd compressor.rank=2 compressor.error_feedback=true" \
            "cm:aggregator={name: cm}"; do
  name=${case%%:*}
  overrides=("${case#*:}")
  [ "$name" = cm ] || read -r -a overrides <<< "${case#*:}"
  # The models' products held on one path (Note [Model GEMM paths]): only the kernels vary.
  for p in "${paths[@]}"; do
    COHORT_MODEL_ISA=generic COHORT_ISA=$p run "$name.$p" 2 "${small[@]}" "${overrides[@]}"
  done
  for p in "${paths[@]}"; do cmp "$TMP/$name.generic.np2.h5" "$TMP/$name.$p.np2.h5"; done
done
echo "sums: ${paths[*]} give identical runs"

# Unknown names and paths the CPU lacks: exit 2, before any work, naming the choices.
bad=(bogus AVX2 "avx512 ")
[[ " ${paths[*]} " == *" avx512 "* ]] || bad+=(avx512)
for isa in "${bad[@]}"; do
  set +e
  msg=$(COHORT_ISA="$isa" "$COHORT" run "$CFG" "${small[@]}" output.path="$TMP/bad.h5" 2>&1)
  rc=$?
  set -e
  [ $rc -eq 2 ] || { echo "FAIL: COHORT_ISA='$isa' exited $rc: $msg"; exit 1; }
  grep -q "COHORT_ISA=$isa" <<< "$msg" || { echo "FAIL: message does not name '$isa': $msg"; exit 1; }
  [ ! -e "$TMP/bad.h5" ] || { echo "FAIL: COHORT_ISA='$isa' wrote a results file"; exit 1; }
done
set +e
msg=$(COHORT_ISA=bogus "$COHORT" bench memory --megabytes 1 --repeats 1 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] || { echo "FAIL: bench with COHORT_ISA=bogus exited $rc: $msg"; exit 1; }
echo "sums: bad COHORT_ISA values are usage errors"

# The models' product paths (Note [Model GEMM paths]): each is named in the results file; ranks
# on different paths agree on the lowest (an MPMD launch, one rank per path, equals the run on
# the generic path); a path the CPU lacks or an unknown name is a usage error.
for p in "${paths[@]}"; do COHORT_MODEL_ISA=$p run "model.$p" 1 "${small[@]}"; done
"$PYTHON" - "$TMP" "${paths[@]}" <<'PY'
import sys
import h5py
for p in sys.argv[2:]:
    with h5py.File(f"{sys.argv[1]}/model.{p}.np1.h5", "r") as f:
        assert f.attrs["model_gemm"] == p, (p, f.attrs["model_gemm"])
PY
if [ "${#paths[@]}" -gt 1 ]; then
  "${MPI[@]}" -n 1 env COHORT_MODEL_ISA="${paths[-1]}" "$COHORT" run "$CFG" "${small[@]}" \
    output.path="$TMP/mixed.h5" output.progress_every=0 : \
    -n 1 env COHORT_MODEL_ISA=generic "$COHORT" run "$CFG" "${small[@]}" \
    output.path="$TMP/mixed.h5" output.progress_every=0 > "$TMP/mixed.log"
  cmp --ignore-config "$TMP/model.generic.np1.h5" "$TMP/mixed.h5"
fi
expect_usage model_isa "COHORT_MODEL_ISA=sse9 is not a path (generic, avx2, avx512)" \
  env COHORT_MODEL_ISA=sse9 "$COHORT" run "$CFG" "${small[@]}" output.path="$TMP/bad_model.h5"
[ "$failures" -eq 0 ] || exit 1
echo "sums: model product paths named, agreed on across ranks, checked"

# comm.sum = float: runs, is labelled, and stays within float32 rounding of the exact sums.
run exact 2 "${small[@]}"
run float 2 "${small[@]}" comm.sum=float
"$PYTHON" - "$TMP/exact.np2.h5" "$TMP/float.np2.h5" <<'PY'
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r") as e, h5py.File(sys.argv[2], "r") as f:
    assert "float" in f.attrs["sum"] and "rank count" in f.attrs["sum"], f.attrs["sum"]
    assert "exact" in e.attrs["sum"], e.attrs["sum"]
    assert "float32 all-reduce" in f.attrs["plan"], f.attrs["plan"]
    a, b = e["rounds/train_loss"][()], f["rounds/train_loss"][()]
    assert np.all(np.isfinite(b)), b
    rel = np.max(np.abs(a - b) / np.abs(a))
    assert rel < 1e-4, (a, b, rel)
print("sums: comm.sum = float is labelled and within 1e-4 of exact")
PY

# Values that outgrow their blocks' scales (the higher levels), at 1, 2 and 4 ranks.
same_at_1_2_4 weighted_levels "${small[@]}" aggregator.weighted=true
echo "sums: all checks passed"
