#!/usr/bin/env bash
# Checkpoints and --resume (Note [Checkpoints]):
#  - bit-exact: a run stopped after round r and resumed at another rank count gives the rows and
#    final model of the run that never stopped (stop at -np 4, resume at -np 2 and -np 1), for
#    top-k with error feedback, cclip + worker momentum + ALIE, PowerSGD with warm start, downlink
#    compression, server Adam, the shard plan, kept local momentum under learning-rate
#    schedules, and scaffold (client controls in the store, the server control in the shared
#    state) with top-k and error feedback on both parts of its message, and mime (its server
#    momentum in the shared state), ditto's and local's personal models (a client slot), ifca's
#    cluster models, their optimizers and exchanges, iterate averaging (its weighted sum),
#    DP-FedAvg, secure aggregation, and mimic's chosen target (attack.target = variance);
#  - preemption: SIGTERM to the ranks ends the run after the current round with a checkpoint,
#    status preempted and exit code 130; --resume completes it with the same results;
#  - bad checkpoints: a truncated, altered or foreign newest file is skipped with a warning; a
#    checkpoint of another config or version is refused (exit 2) naming what differs.
set -euo pipefail
: "${COHORT:?} ${MPIEXEC:?} ${PYTHON:?} ${SRC:?}"
CFG="$SRC/tests/configs/invariance_compress.yaml"
source "$SRC/tests/cli/lib.sh"
R=6

# full NAME OVERRIDES: the uninterrupted run at 4 ranks, checkpoints after rounds 2, 4 and 6.
# resumed NAME FROM NP OVERRIDES: a copy of the checkpoint after round FROM alone, resumed at NP.
resumed() {
  local name=$1 from=$2 np=$3
  shift 3
  local dir="$TMP/$name.from$from.ckpt"
  mkdir -p "$dir"
  cp "$TMP/$name.np4.h5.checkpoints/$(printf 'round-%08d.ckpt' "$from")" "$dir/"
  "${MPI[@]}" -n "$np" "$COHORT" run "$CFG" rounds=$R output.path="$TMP/$name.from$from.h5" \
    output.progress_every=0 checkpoint.every=2 checkpoint.keep=10 checkpoint.path="$dir" "$@" \
    --resume > "$TMP/$name.from$from.log"
  grep -q "resuming from .*round-0*$from.ckpt after round $from" "$TMP/$name.from$from.log"
  cmp --ignore-config "$TMP/$name.np4.h5" "$TMP/$name.from$from.h5"
}
cases=(
  "topk_ef|compressor.name=topk compressor.ratio=0.2 compressor.error_feedback=true"
  "cclip_momentum_alie|aggregator.name=cclip aggregator.tau=0.5 aggregator.iters=2 attack.name=alie attack.count=1 algorithm.client_momentum=0.9"
  "powersgd_warm|compressor.name=powersgd compressor.rank=2 compressor.warm_start=true compressor.error_feedback=true"
  "downlink_topk|downlink_compressor.name=topk downlink_compressor.ratio=0.3"
  "adam|server_optimizer.name=adam server_optimizer.lr=0.01"
  "shard_cclip|aggregator.name=cclip aggregator.tau=0.5 aggregator.iters=1 comm.plan=shard attack.name=ipm attack.count=1"
  "local_momentum_keep|algorithm.local_momentum=0.9 algorithm.local_momentum_state=keep algorithm.lr_schedule.name=step algorithm.lr_schedule.milestones=[3] server_optimizer.lr_schedule.name=cosine"
  "scaffold_topk_ef|algorithm.name=scaffold compressor.name=topk compressor.ratio=0.3 compressor.error_feedback=true"
  "mime|algorithm.name=mime algorithm.beta=0.5 algorithm.grad_batch=8"
  "ditto|personalization.name=ditto personalization.lambda=0.5 data.client_test_fraction=0.25 eval.clients=true"
  "ifca|personalization.name=ifca personalization.k=3 compressor.name=topk compressor.ratio=0.3"
  "local|personalization.name=local data.client_test_fraction=0.25 eval.clients=true"
  "mimic_variance|aggregator.name=cm attack.name=mimic attack.count=1 attack.target=variance"
  "averaging|averaging.name=weighted averaging.power=2 averaging.shift=3 eval.l2=0.01 algorithm.lr_schedule.name=inverse_time algorithm.lr_schedule.shift=2"
)
for c in "${cases[@]}"; do
  name=${c%%|*}
  read -r -a ov <<< "${c#*|}"
  run "$name" 4 rounds=$R checkpoint.every=2 checkpoint.keep=10 "${ov[@]}"
  resumed "$name" 2 2 "${ov[@]}"
  resumed "$name" 4 1 "${ov[@]}"
done
# Decentralized runs: the nodes' models (and choco's public copies, gradient tracking's y) are
# client state; a resumed choco run rebuilds its ghost copies of other ranks' nodes.
CFG="$SRC/tests/configs/decentral.yaml"
dcases=(  # NAME|OVERRIDE|OVERRIDE...
  "dec_dsgd|algorithm.order=gossip_then_step|clients.per_round=8"
  "dec_choco|algorithm={name: choco_sgd, local_steps: 2, batch_size: 8, local_lr: 0.1, gamma: 0.5}|compressor.name=topk|compressor.ratio=0.3"
  "dec_tracking|algorithm={name: gradient_tracking, batch_size: 8, local_lr: 0.05}"
)
for c in "${dcases[@]}"; do
  IFS='|' read -r -a parts <<< "$c"
  name=${parts[0]}
  ov=("${parts[@]:1}")
  run "$name" 4 rounds=$R checkpoint.every=2 checkpoint.keep=10 "${ov[@]}"
  resumed "$name" 2 2 "${ov[@]}"
  resumed "$name" 4 1 "${ov[@]}"
done
# DP-FedAvg: its epsilon is a function of the round, its noise keyed by the round.
CFG="$SRC/tests/configs/dp.yaml"
run dp 4 rounds=$R checkpoint.every=2 checkpoint.keep=10 privacy.noise=distributed
resumed dp 2 2 privacy.noise=distributed
resumed dp 4 1 privacy.noise=distributed
# Secure aggregation: nothing of it carries between rounds; keys, shares and dropouts are keyed
# by the round.
CFG="$SRC/tests/configs/secagg.yaml"
run secagg 4 rounds=$R checkpoint.every=2 checkpoint.keep=10
resumed secagg 2 2
resumed secagg 4 1
CFG="$SRC/tests/configs/invariance_compress.yaml"
echo "resume: the cases resumed at 2 and 1 ranks equal the runs that never stopped"

# Preemption: SIGTERM to the ranks mid-run.
long=(rounds=20000 output.progress_every=0 checkpoint.every=100000 eval.every=0)
"${MPI[@]}" -n 2 "$COHORT" run "$CFG" "${long[@]}" output.path="$TMP/pre.h5" \
  > "$TMP/pre.log" 2>&1 &
job=$!
for _ in $(seq 100); do [ -e "$TMP/pre.h5" ] && break; sleep 0.1; done
sleep 1
pkill -TERM -f "^$COHORT run .*output.path=$TMP/pre.h5" || true  # the ranks, not mpiexec
set +e
wait $job
rc=$?
set -e
[ $rc -eq 130 ] || { echo "FAIL: preempted run exited $rc"; cat "$TMP/pre.log"; exit 1; }
ls "$TMP/pre.h5.checkpoints/"round-*.ckpt > /dev/null
"$PYTHON" - "$TMP/pre.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["status"] == "preempted", f.attrs["status"]
    assert 0 < len(f["rounds/round"]) < 20000
PY
"${MPI[@]}" -n 1 "$COHORT" run "$CFG" "${long[@]}" output.path="$TMP/pre.h5" --resume > /dev/null
"${MPI[@]}" -n 2 "$COHORT" run "$CFG" "${long[@]}" output.path="$TMP/ref.h5" > /dev/null
cmp "$TMP/ref.h5" "$TMP/pre.h5"
echo "resume: a run preempted by SIGTERM resumes to the uninterrupted results"

# Damaged and foreign checkpoints.
base=(rounds=4 output.progress_every=0 checkpoint.every=1 checkpoint.keep=10)
run dmg 1 "${base[@]}"
ck="$TMP/dmg.np1.h5.checkpoints"
truncate -s -9 "$ck/round-00000004.ckpt"                       # truncated
"$PYTHON" - "$ck/round-00000003.ckpt" <<'PY'                   # one byte altered
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x40; open(p, "wb").write(b)
PY
head -c 5000 /dev/urandom > "$ck/round-00000099.ckpt"          # not a checkpoint at all
msg=$("$COHORT" run "$CFG" "${base[@]}" output.path="$TMP/dmg.np1.h5" --resume 2>&1)
for want in "round-00000099.ckpt is not a cohort checkpoint" "round-00000004.ckpt is damaged" \
            "round-00000003.ckpt is damaged" "resuming from .*round-00000002.ckpt after round 2"; do
  grep -q "$want" <<< "$msg" || { echo "FAIL: expected '$want' in: $msg"; exit 1; }
done
run dmg_ref 1 rounds=4 output.progress_every=0
cmp --ignore-config "$TMP/dmg_ref.np1.h5" "$TMP/dmg.np1.h5"
# Another config, another version: refused, naming what differs.
expect2() {
  local want=$1
  shift
  set +e
  msg=$("$COHORT" run "$CFG" "$@" 2>&1)
  local rc=$?
  set -e
  [ $rc -eq 2 ] || { echo "FAIL: exit $rc (want 2): $msg"; exit 1; }
  grep -q -- "$want" <<< "$msg" || { echo "FAIL: expected '$want' in: $msg"; exit 1; }
}
expect2 "seed (6 here, 5 in the checkpoint)" "${base[@]}" output.path="$TMP/dmg.np1.h5" seed=6 --resume
expect2 "algorithm.local_lr" "${base[@]}" output.path="$TMP/dmg.np1.h5" algorithm.local_lr=0.2 --resume
"$PYTHON" - "$ck/round-00000004.ckpt" <<'PY'                   # the newest file, from "cohort 9.9.9"
import struct, sys, zlib
p = sys.argv[1]; b = open(p, "rb").read()[:-4]
m = len(b"cohort-checkpoint\n") + 4
n = struct.unpack("<Q", b[m:m + 8])[0]
head = b[m + 8:m + 8 + n].decode()
import re
head = re.sub(r"version: .*", "version: 9.9.9", head, count=1).encode()
b = b[:m] + struct.pack("<Q", len(head)) + head + b[m + 8 + n:]
open(p, "wb").write(b + struct.pack("<I", zlib.crc32(b)))
PY
expect2 "written by cohort 9.9.9" "${base[@]}" output.path="$TMP/dmg.np1.h5" --resume
echo "resume: all checks passed"
