#!/usr/bin/env bash
# Convolutional models end to end (docs/models.md): a tiny layer stack on inline 1×6×6 images
# gives bitwise-identical /rounds and final model at 1 and 2 ranks (dropout masks come from the
# clients' keyed streams), prints its layer shapes once, configs/cnn_mnist.yaml validates, and a
# model.layers list that does not fit the data is a usage error naming the layer; cnn_mnist on
# Fashion-MNIST is bitwise the same at any ranks x client threads.
set -euo pipefail
CFG="$SRC/tests/configs/tiny_conv.yaml"
source "$SRC/tests/cli/lib.sh"

run tiny 1
run tiny 2
cmp "$TMP/tiny.np1.h5" "$TMP/tiny.np2.h5"
# Rank 0 alone prints the shapes: one line per layer, once.
lines=$(grep -c 'conv2d 1→4 3×3 pad 1: 6×6×1 → 6×6×4, 40 params' "$TMP/tiny.np2.log" || true)
[ "$lines" -eq 1 ] || { echo "FAIL: expected the conv2d shape line once, got $lines"; exit 1; }

# cnn_mnist itself (dropout in both dense blocks) at ranks x client threads 1x1, 1x4, 2x1 and
# 2x2: bitwise the same (Note [Client threads]). Small rounds; the test-set evaluation dominates.
CNN=(run "$SRC/configs/cnn_mnist.yaml" rounds=2 clients.num_clients=5 clients.per_round=4
  algorithm.local_steps=2 algorithm.batch_size=16 eval.every=0 output.progress_every=0)
for case in 1:1 1:4 2:1 2:2; do
  "${MPI[@]}" -n "${case%:*}" "$COHORT" "${CNN[@]}" clients.threads="${case#*:}" \
    output.path="$TMP/cnn.$case.h5" > "$TMP/cnn.$case.log"
done
for case in 1:4 2:1 2:2; do cmp --ignore-config "$TMP/cnn.1:1.h5" "$TMP/cnn.$case.h5"; done

"$COHORT" validate "$SRC/configs/cnn_mnist.yaml" > "$TMP/cnn.out"
grep -qF 'conv2d 32→64 3×3: 26×26×32 → 24×24×64, 18,496 params' "$TMP/cnn.out"
grep -qF 'cnn_mnist: 1199882 parameters' "$TMP/cnn.out"

expect_usage too_small "model.layers[0] (conv2d): conv2d 1→4 7×7 does not fit input 6×6×1" \
  "$COHORT" validate "$CFG" 'model.layers=[{type: conv2d, out: 4, kernel: 7}]'
expect_usage in_size "model.layers[1] (linear): in = 30 but its input 36 has 36 values" \
  "$COHORT" validate "$CFG" 'model.layers=[{type: flatten}, {type: linear, in: 30, out: 3}]'
expect_usage key "unknown key 'kernal' in model.layers[0] (did you mean 'kernel'?)" \
  "$COHORT" run "$CFG" 'model.layers=[{type: conv2d, out: 4, kernal: 3}]'
expect_usage classes "model.name = layers: the last layer gives 36 values (36), the data has 3 classes" \
  "${MPI[@]}" -n 2 "$COHORT" run "$CFG" 'model.layers=[{type: flatten}]'
[ "$failures" -eq 0 ] || exit 1
echo "conv models: rank and thread invariant, shapes printed once, layer errors exit 2"
