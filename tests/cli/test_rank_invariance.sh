#!/usr/bin/env bash
# The same config at -np 1, 2 and 4 gives bitwise-identical /rounds metrics (except wall-clock
# times), final model and per-client sample counts (Note [Deterministic sums]); and so does any
# clients.threads at any rank count (Note [Client threads]).
set -euo pipefail
: "${COHORT:?} ${MPIEXEC:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MPI=("$MPIEXEC" --oversubscribe --allow-run-as-root)

check() {  # name, then overrides
  local name=$1
  shift
  for np in 1 2 4; do
    "${MPI[@]}" -n $np "$COHORT" run "$@" output.path="$TMP/$name.np$np.h5" output.progress_every=0 \
      > "$TMP/$name.np$np.log"
  done
  "$PYTHON" "$SRC/tests/compare_runs.py" "$TMP/$name.np1.h5" "$TMP/$name.np2.h5"
  "$PYTHON" "$SRC/tests/compare_runs.py" "$TMP/$name.np1.h5" "$TMP/$name.np4.h5"
}

threads() {  # name, then overrides: (ranks x threads) 1x1 against 1x2, 1x4, 2x2 and 2x3
  local name=$1
  shift
  for run in 1:1 1:2 1:4 2:2 2:3; do
    "${MPI[@]}" -n "${run%:*}" "$COHORT" run "$@" clients.threads="${run#*:}" \
      output.path="$TMP/$name.$run.h5" output.progress_every=0 > "$TMP/$name.$run.log"
  done
  grep -q "x 4 client threads" "$TMP/$name.1:4.log"
  for run in 1:2 1:4 2:2 2:3; do
    "$PYTHON" "$SRC/tests/compare_runs.py" --ignore-config "$TMP/$name.1:1.h5" "$TMP/$name.$run.h5"
  done
}

# FedAvg, MLP on Fashion-MNIST, partial participation (7 of 13 clients, uneven blocks per
# rank), weighted mean, local steps with minibatches.
check fedavg_mlp "$SRC/configs/quickstart.yaml" rounds=3 clients.num_clients=13 \
  clients.per_round=7 algorithm.local_steps=5 algorithm.local_epochs=0 model.hidden=[32]
# Server-only SGD with Adam on the FedProx synthetic problem (natural partition).
check sgd_adam "$SRC/tests/configs/invariance_sgd_adam.yaml"
# Least squares with heavy-ball momentum, every client, several local epochs.
check linear_momentum "$SRC/tests/configs/invariance_linear.yaml"
# The client optimizer options on the same problem, partial participation so that kept momentum
# waits between a client's rounds: a step schedule with warmup, weight decay, clipping that
# binds, kept local momentum, and a cosine server schedule.
check linear_optim "$SRC/tests/configs/invariance_linear.yaml" clients.per_round=4 \
  algorithm.lr_schedule.name=step algorithm.lr_schedule.milestones=[2] \
  algorithm.lr_schedule.warmup_rounds=1 algorithm.weight_decay=0.01 algorithm.clip_norm=0.5 \
  algorithm.local_momentum=0.9 algorithm.local_momentum_state=keep \
  server_optimizer.lr_schedule.name=cosine server_optimizer.lr_schedule.min_lr=0.1
# scaffold (both options) and its two-part message under top-k with error feedback, partial
# participation so client controls wait between rounds; and its clients on several threads
# sharing the control slot.
check scaffold_ii "$SRC/tests/configs/invariance_compress.yaml" algorithm.name=scaffold \
  compressor.name=topk compressor.ratio=0.3 compressor.error_feedback=true
check scaffold_i "$SRC/tests/configs/invariance_compress.yaml" algorithm.name=scaffold \
  algorithm.option=I
threads threads_scaffold "$SRC/tests/configs/invariance_compress.yaml" algorithm.name=scaffold
# mime: two exchanges a round (the uncompressed gradients at x, then the compressed messages);
# mimelite with anchor gradients on minibatches; mime's clients on several threads.
check mime "$SRC/tests/configs/invariance_compress.yaml" algorithm.name=mime algorithm.beta=0.5 \
  compressor.name=topk compressor.ratio=0.3
check mimelite "$SRC/tests/configs/invariance_compress.yaml" algorithm.name=mimelite \
  algorithm.grad_batch=8
threads threads_mime "$SRC/tests/configs/invariance_compress.yaml" algorithm.name=mime
# The bucketing paper's setting: honest clients on label-sorted blocks, Byzantine label flippers
# on iid shares of their own (data.partition.byzantine_data = iid), cm over buckets of 2.
check byzantine_data "$SRC/configs/repro/bucketing/exp3.yaml" model.name=mlp model.hidden=[16] \
  rounds=3 eval.every=3 attack.name=labelflip aggregator.bucketing=2
# mimic's target = variance: the first round gathers the honest messages and picks the client.
check mimic_variance "$SRC/configs/repro/bucketing/exp3.yaml" model.name=mlp model.hidden=[16] \
  rounds=3 eval.every=3 attack.name=mimic attack.target=variance aggregator.name=krum \
  aggregator.f=5
# ... and records the client it picked: an honest one (not in /clients/byzantine).
"$PYTHON" - "$TMP/mimic_variance.np1.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    t = int(f.attrs["mimic_target"])
    assert 0 <= t < 25 and f["clients/byzantine"][t] == 0, t
PY
# Client threads: fedavg clients with minibatches, uneven windows (7 sampled of 13), top-k with
# error feedback, worker momentum and ALIE against cclip; evaluation over several chunks.
threads threads_fedavg "$SRC/configs/quickstart.yaml" rounds=3 clients.num_clients=13 \
  clients.per_round=7 algorithm.local_steps=4 algorithm.local_epochs=0 model.hidden=[32] \
  compressor.name=topk compressor.ratio=0.05 compressor.error_feedback=true \
  algorithm.client_momentum=0.9 attack.name=alie attack.count=2 "aggregator={name: cclip}" \
  eval.chunk=700
# Client threads sharing the kept local momentum slot, with the optimizer options above.
threads threads_optim "$SRC/tests/configs/invariance_linear.yaml" clients.per_round=4 \
  algorithm.lr_schedule.name=step algorithm.lr_schedule.milestones=[2] \
  algorithm.weight_decay=0.01 algorithm.clip_norm=0.5 algorithm.local_momentum=0.9 \
  algorithm.local_momentum_state=keep
# Personalization and fairness (docs/algorithms.md §8) with per-client evaluation on local test
# sets: ditto's personal models in the client store, ifca's three cluster models with an
# exchange each, finetuned evaluation, q-FFL's loss-weighted mean (its denominator is an exact
# all-reduce), and ditto's clients on several threads.
pers=("$SRC/tests/configs/invariance_compress.yaml" data.client_test_fraction=0.25 eval.clients=true)
check ditto "${pers[@]}" personalization.name=ditto personalization.lambda=0.5
check ifca "${pers[@]}" personalization.name=ifca personalization.k=3
check finetune "${pers[@]}" personalization.name=finetune personalization.steps=3
check qffl "${pers[@]}" aggregator.name=qffl aggregator.q=2
threads threads_ditto "${pers[@]}" personalization.name=ditto
threads threads_ifca "${pers[@]}" personalization.name=ifca personalization.k=2
# Decentralized learning (docs/algorithms.md §5): nodes' messages cross ranks through the
# neighbourhood exchange; dsgd in both orders with partial participation, choco-sgd with top-k
# on the exponential graph, choco-gossip with QSGD on a torus with inactive nodes (their ghosts
# still follow), a time-varying random matching, naive compressed gossip with rand-k on a
# matching with inactive nodes, gradient tracking on G(n, p), and dsgd's nodes on several threads.
dec="$SRC/tests/configs/decentral.yaml"
check dsgd "$dec"
check dsgd_gossip_first "$dec" algorithm.order=gossip_then_step clients.per_round=7
check choco_sgd "$dec" "algorithm={name: choco_sgd, local_steps: 2, batch_size: 8, local_lr: 0.1, gamma: 0.5}" \
  compressor.name=topk compressor.ratio=0.3 topology.name=exponential
check choco_gossip "$dec" "algorithm={name: choco_gossip, gamma: 0.4, init_spread: 1}" \
  compressor.name=qsgd "topology={name: torus, rows: 3, cols: 4}" clients.per_round=9
check matching "$dec" topology.name=random_matching
check naive_gossip "$dec" "algorithm={name: naive_gossip, gamma: 0.3, init_spread: 1}" \
  compressor.name=randk compressor.ratio=0.3 topology.name=random_matching clients.per_round=9
check tracking "$dec" "algorithm={name: gradient_tracking, batch_size: 8, local_lr: 0.05}" \
  "topology={name: erdos_renyi, p: 0.3}"
threads threads_dsgd "$dec"
# Fewer nodes than ranks: ranks without nodes still join every neighbourhood exchange.
check few_nodes "$dec" clients.num_clients=3 "algorithm={name: choco_sgd, local_steps: 1, batch_size: 8, local_lr: 0.1}" \
  compressor.name=randk compressor.ratio=0.5
# DP-FedAvg with Poisson sampling (a varying, padded sample): the server's noise, and the
# clients' shares of distributed noise with per-layer clipping; and on several threads.
dp="$SRC/tests/configs/dp.yaml"
check dp_central "$dp"
check dp_distributed "$dp" privacy.noise=distributed privacy.clip_scope=layer
threads threads_dp "$dp"
# Secure aggregation over DP-FedAvg's distributed noise, clients dropping out after masking: the
# protocol's transcript digest (/rounds/secagg_transcript), the unmasked sums and the model are
# the same at any rank count and any number of client threads (Note [Secure aggregation]).
sa="$SRC/tests/configs/secagg.yaml"
check secagg_dp "$sa"
check secagg_central "$sa" privacy.noise=central secagg.threshold=0
threads threads_secagg "$sa" rounds=2
# dp_sgd: every client's Poisson batches and noise from its own streams.
dps="privacy={name: dp_sgd, clip: 0.5, noise_multiplier: 0.8, sample_rate: 0.2}"
check dp_sgd "$dp" "$dps"
threads threads_dp_sgd "$dp" "$dps"
echo "rank invariance: all runs identical at 1, 2 and 4 ranks, and at 1 to 4 client threads"
