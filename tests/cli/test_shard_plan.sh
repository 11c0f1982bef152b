#!/usr/bin/env bash
# The shard plan (docs/architecture.md "Exchange plans"): robust rules on coordinate blocks give
# files bitwise identical to the gather plan at -np 1, 2 and 4; plan auto shards once a round's
# messages exceed comm.memory_budget_mib; impossible combinations are config errors.
set -euo pipefail
CFG="$SRC/tests/configs/invariance_compress.yaml"
source "$SRC/tests/cli/lib.sh"

# An MLP of 26,629 parameters: seven 4096-coordinate chunks, so 4 ranks get uneven blocks.
big=(model.hidden=[1024])
cases=(
  "cm_alie|aggregator.name=cm attack.name=alie attack.count=2"
  "tm_ipm|aggregator.name=tm aggregator.b=1 attack.name=ipm attack.count=1"
  "krum_gaussian|aggregator.name=krum aggregator.f=1 attack.name=gaussian attack.count=1"
  "multikrum_signflip_momentum|aggregator.name=multikrum aggregator.f=1 attack.name=signflip attack.count=1 algorithm.client_momentum=0.9"
  "gm_mimic|aggregator.name=gm aggregator.init=mean attack.name=mimic attack.count=1"
  # 16 messages and T = 2: gm takes its direct path (Note [gm path choice] in src/robust/gm.cpp)
  "gm_direct_alie|aggregator.name=gm aggregator.iters=2 clients.num_clients=18 clients.per_round=16 attack.name=alie attack.count=2"
  "cclip_bucketing_alie|aggregator.name=cclip aggregator.bucketing=2 attack.name=alie attack.count=1"
  "bulyan_zero|aggregator.name=bulyan aggregator.f=1 clients.per_round=7 attack.name=zero attack.count=1"
  "tm_nonfinite|aggregator.name=tm aggregator.b=1 attack.name=nonfinite attack.count=2"
  "krum_qsgd_ef|aggregator.name=krum aggregator.f=1 attack.name=alie attack.count=1 compressor.name=qsgd compressor.error_feedback=true"
)
for c in "${cases[@]}"; do
  name=${c%%|*}
  read -r -a overrides <<< "${c#*|}"
  run "$name.gather" 1 "${big[@]}" comm.plan=gather "${overrides[@]}"
  for np in 1 2 4; do
    run "$name.shard" $np "${big[@]}" comm.plan=shard "${overrides[@]}"
    cmp --ignore-config "$TMP/$name.gather.np1.h5" "$TMP/$name.shard.np$np.h5" || {
      "$PYTHON" "$SRC/tests/compare_runs.py" --ignore-config "$TMP/$name.gather.np1.h5" \
        "$TMP/$name.shard.np$np.h5"
      exit 1
    }
  done
  grep -q "exchange plan: shard" "$TMP/$name.shard.np4.log"
  echo "ok: $name (gather = shard at np 1, 2, 4)"
done

"$PYTHON" - "$TMP" <<'PY'
import sys, h5py
with h5py.File(f"{sys.argv[1]}/tm_nonfinite.shard.np4.h5", "r") as f:
    assert f.attrs["status"] == "completed"
    assert f.attrs["plan"].startswith("shard")
    # every sampled NaN attacker was dropped by its owner and counted
    assert (f["rounds/dropped_nonfinite"][()] == f["rounds/byzantine_sampled"][()]).all()
    assert f["rounds/byzantine_sampled"][()].sum() > 0
print("shard: non-finite messages dropped and counted")
PY

# plan auto: gather while 5 x 53,253 x 4 bytes (1.02 MiB) fit the budget, shard above it.
"$COHORT" validate "$CFG" model.hidden=[2048] aggregator.name=cm > /dev/null
run auto_small 2 model.hidden=[2048] aggregator.name=cm comm.memory_budget_mib=2 rounds=1
run auto_big 2 model.hidden=[2048] aggregator.name=cm comm.memory_budget_mib=1 rounds=1
grep -q "exchange plan: gather" "$TMP/auto_small.np2.log"
grep -q "exchange plan: shard" "$TMP/auto_big.np2.log"
echo "ok: plan auto picks shard above comm.memory_budget_mib"

# A round with too few finite messages for the rule fails the same way under both plans: the
# shard plan's owners drop the NaN message before the all-to-all, and the message still counts it.
for plan in gather shard; do
  set +e
  "${MPI[@]}" -n 2 "$COHORT" run "$CFG" "${big[@]}" aggregator.name=krum aggregator.f=1 \
    attack.name=nonfinite attack.count=1 rounds=2 comm.plan=$plan output.path="$TMP/few.$plan.h5" \
    output.progress_every=0 > "$TMP/few.$plan.log" 2>&1
  rc=$?
  set -e
  [ $rc -ne 0 ] || { echo "FAIL: krum with 4 finite of 5 messages ran under $plan"; exit 1; }
  grep -q "aggregator krum (round 1): 4 of 5 messages are finite, too few for the rule" \
    "$TMP/few.$plan.log" || { cat "$TMP/few.$plan.log"; exit 1; }
done

# Combinations that cannot shard are usage errors (exit 2) that say what works.
expect_usage() {
  local want=$1
  shift
  set +e
  msg=$("$COHORT" validate "$CFG" "$@" 2>&1)
  rc=$?
  set -e
  [ $rc -eq 2 ] || { echo "FAIL: $* exited $rc, expected 2"; exit 1; }
  grep -q -- "$want" <<< "$msg" || { echo "FAIL: '$want' not in: $msg"; exit 1; }
}
expect_usage "cannot run on coordinate blocks: use comm.plan = gather" \
  aggregator.name=zeno aggregator.b=1 comm.plan=shard
expect_usage "mean is a sum: use comm.plan = reduce" comm.plan=shard
expect_usage "attack minmax needs every honest message on every rank" \
  aggregator.name=cm comm.plan=shard attack.name=minmax attack.count=1
# ... and plan auto keeps minsum on gather even above the budget.
run auto_minsum 2 model.hidden=[2048] aggregator.name=cm comm.memory_budget_mib=1 rounds=1 \
  attack.name=minsum attack.count=1
grep -q "exchange plan: gather" "$TMP/auto_minsum.np2.log"
echo "shard plan: all checks passed"
