#!/usr/bin/env bash
# Config errors end the run cleanly (docs/architecture.md "Errors"): exit code exactly 2, one line
# "cohort: error: <message>" on stderr, the same line from `validate` and `run`, and printed once
# under mpiexec (rank 0 speaks, not every rank). Also the CLI's own contract: usage errors exit 2,
# --version, list, and a valid config validates.
# Environment (set by CTest): COHORT (binary), MPIEXEC (mpiexec), SRC (source dir).
set -uo pipefail
: "${COHORT:?set COHORT to the cohort binary}"
: "${MPIEXEC:?set MPIEXEC to mpiexec}"
: "${SRC:?set SRC to the source directory}"

failures=0
checks=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1  # anything a run might write lands here

# capture NAME CMD...: runs CMD (2 minutes at most), stdout -> NAME.out, stderr -> NAME.err,
# exit status -> $rc.
rc=0
capture() {
  local name=$1
  shift
  timeout 120 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
}
snippet() { head -c 600 "$1" | tr '\n' ' '; }

# expect_usage_error LABEL NAME EXPECTED: the capture NAME exited 2 with exactly one error line,
# containing EXPECTED once, and nothing of it on stdout.
expect_usage_error() {
  local label=$1 name=$2 expected=$3 n m
  checks=$((checks + 1))
  [[ $rc -eq 2 ]] || fail "$label: exit code $rc, expected 2; stderr: $(snippet "$tmp/$name.err")"
  n=$(grep -c '^cohort: error: ' "$tmp/$name.err")
  [[ $n -eq 1 ]] || fail "$label: $n 'cohort: error:' lines on stderr, expected 1; stderr: $(snippet "$tmp/$name.err")"
  m=$(grep -cF -- "$expected" "$tmp/$name.err")
  [[ $m -eq 1 ]] || fail "$label: message '$expected' printed $m times on stderr, expected once; stderr: $(snippet "$tmp/$name.err")"
  if grep -qF 'cohort: error' "$tmp/$name.out"; then fail "$label: error printed on stdout"; fi
}

# check_bad NAME CONFIG EXPECTED [OVERRIDES...]: validate, run and a 2-rank run all fail with
# exit code 2 and the same single error line containing EXPECTED.
check_bad() {
  local name=$1 config=$2 expected=$3 lv lr lm
  shift 3
  capture "$name.validate" "$COHORT" validate "$config" "$@"
  expect_usage_error "$name: cohort validate" "$name.validate" "$expected"
  capture "$name.run" "$COHORT" run "$config" "$@"
  expect_usage_error "$name: cohort run" "$name.run" "$expected"
  capture "$name.mpi" "$MPIEXEC" -n 2 --oversubscribe --allow-run-as-root "$COHORT" run "$config" "$@"
  expect_usage_error "$name: mpiexec -n 2 cohort run" "$name.mpi" "$expected"

  lv=$(grep '^cohort: error: ' "$tmp/$name.validate.err")
  lr=$(grep '^cohort: error: ' "$tmp/$name.run.err")
  lm=$(grep '^cohort: error: ' "$tmp/$name.mpi.err")
  checks=$((checks + 1))
  [[ "$lv" == "$lr" ]] || fail "$name: validate and run print different errors: '$lv' vs '$lr'"
  [[ "$lr" == "$lm" ]] || fail "$name: 1-rank and 2-rank runs print different errors: '$lr' vs '$lm'"
}

# ---- bad configs ----------------------------------------------------------------------------
out="output: {path: $tmp/results/metrics.h5}"
quad="data: {name: quadratic, dim: 2}"
printf '%s\n' "$quad" "$out" > good.yaml

printf '%s\n' "algorithm: {local_step: 5}" "$out" > unknown_key.yaml
check_bad unknown_key unknown_key.yaml \
  "unknown key 'algorithm.local_step' (did you mean 'algorithm.local_steps'?)"

printf '%s\n' "rounsd: 3" "$out" > top_typo.yaml
check_bad top_typo top_typo.yaml "unknown key 'rounsd' (did you mean 'rounds'?)"

printf '%s\n' "server_optimizer: {name: sgd, beta: 0.9}" "$out" > sibling.yaml
check_bad sibling sibling.yaml \
  "key 'server_optimizer.beta' is not an option of server_optimizer.name 'sgd'; it belongs to: momentum, nesterov"

printf '%s\n' "algorithm: {name: fedavgg}" "$out" > component.yaml
check_bad component component.yaml \
  "unknown algorithm.name 'fedavgg' (known: sgd, fedavg, fedprox, scaffold, mime, mimelite, gossip, dsgd, choco_gossip, choco_sgd, naive_gossip, gradient_tracking); did you mean 'fedavg'?"

printf '%s\n' "rounds: 0" "$out" > range.yaml
check_bad range range.yaml "rounds = '0' is not allowed: expected an integer >= 1"

printf '%s\n' "model: {name: mlp, activation: relu6}" "$out" > enum.yaml
check_bad enum enum.yaml \
  "model.activation = 'relu6' is not allowed: expected one of relu | tanh | sigmoid (did you mean 'relu'?)"

printf '%s\n' "rounds: 3" "  bad: indent" "$out" > syntax.yaml
check_bad syntax syntax.yaml "syntax.yaml:2:"

printf '%s\n' "hello" > scalar.yaml
check_bad top_scalar_with_override scalar.yaml "'<top level>' must be a mapping of keys" seed=1

check_bad override_unknown good.yaml \
  "unknown key 'algorithm.local_step' (did you mean 'algorithm.local_steps'?)" algorithm.local_step=5
check_bad override_malformed good.yaml "override 'foo' must look like key.path=value" foo
check_bad override_range good.yaml "clients.fraction = '1.5' is not allowed: expected a number in (0, 1]" \
  clients.fraction=1.5
check_bad missing_config "$tmp/no_such.yaml" "cannot open config file '$tmp/no_such.yaml'"

# Semantic errors found when the data is built.
printf '%s\n' "$quad" "clients: {num_clients: 4, per_round: 5}" "$out" > per_round.yaml
check_bad per_round per_round.yaml "clients.per_round = 5 exceeds clients.num_clients = 4"

printf '%s\n' "data: {name: quadratic, dim: 3, h: [1, 2, 3]}" "clients: {num_clients: 2}" "$out" \
  > quad_h.yaml
check_bad quadratic_h quad_h.yaml "data.h has 3 values; expected clients.num_clients = 2"

printf '%s\n' "data: {name: libsvm, path: $tmp/missing.svm}" "$out" > libsvm.yaml
check_bad libsvm_missing libsvm.yaml "cannot open LIBSVM file $tmp/missing.svm"

printf '%s\n' "data: {name: fashion_mnist}" "$out" > fmnist.yaml
check_bad fashion_mnist_missing fmnist.yaml \
  "Fashion-MNIST file /nonexistent/train-images-idx3-ubyte.gz not found" data.path=/nonexistent
# Checked with the components' options, before any data is read (no file is needed).
check_bad normalize_std fmnist.yaml \
  "data.normalize = [mean, std]: std = 0 is not allowed: expected a finite number > 0" \
  data.path=/nonexistent "data.normalize=[0.5, 0]"
check_bad normalize_length fmnist.yaml \
  "data.normalize = '[0.1, 0.2, 0.3]' is not allowed: expected one of dataset | none, or a list of 2 numbers (got 3 values)" \
  data.path=/nonexistent "data.normalize=[0.1, 0.2, 0.3]"
check_bad schedule_milestones good.yaml \
  "server_optimizer.lr_schedule.milestones must be strictly increasing: 3 follows 5" \
  server_optimizer.lr_schedule.name=step "server_optimizer.lr_schedule.milestones=[5, 3]"
check_bad fedprox_mu good.yaml "algorithm.mu = '-0.5' is not allowed: expected a number >= 0" \
  algorithm.name=fedprox algorithm.mu=-0.5
check_bad scaffold_option good.yaml \
  "algorithm.option = 'III' is not allowed: expected one of I | II" \
  algorithm.name=scaffold algorithm.option=III
check_bad scaffold_krum good.yaml \
  "algorithm.name = scaffold needs aggregator.name = mean with aggregator.weighted = false (its server statistics are unweighted means over the sampled clients); got aggregator.name = krum" \
  algorithm.name=scaffold aggregator.name=krum
check_bad scaffold_weighted good.yaml \
  "algorithm.name = scaffold needs aggregator.name = mean with aggregator.weighted = false (its server statistics are unweighted means over the sampled clients); got aggregator.weighted = true" \
  algorithm.name=scaffold aggregator.weighted=true
check_bad scaffold_attack good.yaml \
  "algorithm.name = scaffold runs without attacks (attack.name = none); got attack.name = ipm" \
  algorithm.name=scaffold attack.name=ipm attack.count=1
check_bad scaffold_worker_momentum good.yaml \
  "algorithm.name = scaffold sends more than a model update, which worker momentum is not defined on: set algorithm.client_momentum = 0" \
  algorithm.name=scaffold algorithm.client_momentum=0.9
check_bad scaffold_local_momentum good.yaml \
  "key 'algorithm.local_momentum' is not an option of algorithm.name 'scaffold'; it belongs to: fedavg, fedprox" \
  algorithm.name=scaffold algorithm.local_momentum=0.9
check_bad mime_beta_one good.yaml "algorithm.beta = 1 is not allowed: expected a number in [0, 1)" \
  algorithm.name=mime algorithm.beta=1
check_bad mimelite_beta_negative good.yaml \
  "algorithm.beta = -0.1 is not allowed: expected a number in [0, 1)" \
  algorithm.name=mimelite algorithm.beta=-0.1
check_bad mime_server_adam good.yaml \
  "algorithm.name = mime applies its own server momentum (algorithm.beta): set server_optimizer.name = sgd (its lr is eta_s), not adam" \
  algorithm.name=mime server_optimizer.name=adam
check_bad mime_median good.yaml \
  "algorithm.name = mime needs aggregator.name = mean with aggregator.weighted = false (its server statistics are unweighted means over the sampled clients); got aggregator.name = cm" \
  algorithm.name=mime aggregator.name=cm
# Personalization and fairness (docs/algorithms.md §8) on a small classification problem.
printf '%s\n' "data: {name: synthetic_fedprox, dim: 20, classes: 5, min_samples: 20}" \
  "model: {name: logreg}" "clients: {num_clients: 7, per_round: 5}" \
  "algorithm: {name: fedavg, local_steps: 3, batch_size: 8}" "$out" > classes.yaml
check_bad qffl_q classes.yaml "aggregator.q = '-1' is not allowed: expected a number >= 0" \
  aggregator.name=qffl aggregator.q=-1
check_bad qffl_sgd classes.yaml \
  "aggregator.name = qffl weighs the clients' model updates x - y_i with L = 1/eta_l: algorithm.name must be fedavg or fedprox, not sgd" \
  "algorithm={name: sgd}" aggregator.name=qffl
check_bad qffl_attack classes.yaml \
  "aggregator.name = qffl trusts the losses the clients report: it runs without attacks (attack.name = none), got ipm" \
  aggregator.name=qffl attack.name=ipm attack.count=1
# The Byzantine clients' data (Note [Byzantine data]) and mimic's target (Note [Mimic target]).
check_bad byzantine_data_enum classes.yaml \
  "data.partition.byzantine_data = 'half' is not allowed: expected one of same | iid | none" \
  data.partition.byzantine_data=half
check_bad byzantine_data_trains classes.yaml \
  "data.partition.byzantine_data = none leaves the Byzantine clients no rows, but attack.name = labelflip trains on its clients' rows" \
  data.partition.name=iid data.partition.byzantine_data=none attack.name=labelflip attack.count=1
check_bad byzantine_data_natural classes.yaml \
  "data.partition.byzantine_data = iid needs a partition of the rows" \
  data.partition.byzantine_data=iid attack.name=ipm attack.count=1
check_bad mimic_target_enum classes.yaml \
  "attack.target = 'max' is not allowed: expected one of lowest | variance" \
  attack.name=mimic attack.count=1 attack.target=max
check_bad ditto_lambda classes.yaml \
  "personalization.lambda = '-0.1' is not allowed: expected a number >= 0" \
  personalization.name=ditto personalization.lambda=-0.1
check_bad finetune_zero classes.yaml \
  "personalization.steps = '0' is not allowed: expected an integer >= 1" \
  personalization.name=finetune personalization.steps=0 eval.clients=true data.client_test_fraction=0.2
check_bad finetune_no_eval classes.yaml \
  "personalization.name = finetune changes only how the clients are evaluated: set eval.clients = true" \
  personalization.name=finetune
check_bad ifca_k classes.yaml \
  "personalization.k = 8 exceeds clients.num_clients = 7: every cluster model needs clients that can pick it; allowed: 1 to 7" \
  personalization.name=ifca personalization.k=8
check_bad ifca_ef classes.yaml \
  "personalization.name = ifca moves clients between cluster models, which per-client memories" \
  personalization.name=ifca compressor.name=topk compressor.ratio=0.1 compressor.error_feedback=true
check_bad ifca_krum classes.yaml \
  "personalization.name = ifca averages each cluster model over the clients that picked it, however few: it needs aggregator.name = mean, not krum" \
  personalization.name=ifca aggregator.name=krum
check_bad ditto_sgd classes.yaml \
  "personalization.name = ditto takes local SGD steps with the algorithm's options: algorithm.name must be fedavg, fedprox, scaffold, mime or mimelite, not sgd" \
  "algorithm={name: sgd}" personalization.name=ditto
check_bad ditto_k classes.yaml \
  "key 'personalization.k' is not an option of personalization.name 'ditto'; it belongs to: ifca" \
  personalization.name=ditto personalization.k=3
check_bad local_attack classes.yaml \
  "personalization.name = local sends nothing, so there is nothing to attack: set attack.name = none (got ipm)" \
  personalization.name=local attack.name=ipm attack.count=1
check_bad client_eval_no_split classes.yaml \
  "eval.clients = true evaluates each client on its local test set: set data.client_test_fraction > 0 (e.g. 0.2)" \
  eval.clients=true
check_bad client_test_all classes.yaml \
  "data.client_test_fraction = 1 leaves the clients nothing to train on: allowed values are in [0, 1)" \
  data.client_test_fraction=1
check_bad client_test_quadratic good.yaml \
  "data.client_test_fraction needs clients with samples: data.name = quadratic clients have an objective, not samples to hold out" \
  data.client_test_fraction=0.2
check_bad client_test_tiny classes.yaml \
  "data.client_test_fraction = 0.2 needs at least 2 samples on every client (one to train, one to test); client 0 has 1" \
  "data={name: inline, dim: 1, x: [0, 1, 2, 3], y: [0, 1, 0, 1], task: classification}" \
  data.client_test_fraction=0.2 "clients={num_clients: 4, per_round: 2}"

# Decentralized runs (docs/algorithms.md §5).
dec="$SRC/tests/configs/decentral.yaml"
check_bad choco_matching "$dec" \
  "algorithm.name = choco_gossip keeps public copies of its neighbours, which a graph that changes every round does not have: use a static topology" \
  "algorithm={name: choco_gossip}" topology.name=random_matching
check_bad dsgd_compressor "$dec" \
  "algorithm.name = dsgd exchanges exact models: compressor.name must be none (choco_gossip, choco_sgd and naive_gossip compress), got topk" \
  compressor.name=topk
check_bad uniform_star "$dec" \
  "topology.weights = uniform (1/(deg + 1)) is symmetric only on regular graphs" \
  topology.name=star topology.weights=uniform
check_bad torus_size "$dec" "topology.rows x topology.cols = 3 x 3 = 9 must equal clients.num_clients = 12" \
  "topology={name: torus, rows: 3, cols: 3}"
check_bad hypercube_size "$dec" "topology.name = hypercube needs clients.num_clients a power of two, got 12" \
  topology.name=hypercube
check_bad edges_missing "$dec" "topology.path: cannot open edge list '$tmp/none.txt'" \
  "topology={name: edges, path: $tmp/none.txt}"
printf '0 1\n1 2\n2 2\n' > "$tmp/loop.txt"
check_bad edges_loop "$dec" "$tmp/loop.txt:3: self-loop 2 2" "topology={name: edges, path: $tmp/loop.txt}"
check_bad dec_server "$dec" \
  "algorithm.name = dsgd has no server: leave server_optimizer at its default (sgd, lr 1, constant)" \
  server_optimizer.name=adam
check_bad averaging_decentral "$dec" \
  "algorithm.name = dsgd: its evaluated model is the nodes' average already; averaging.name must be none" \
  averaging.name=weighted
check_bad choco_gamma "$dec" "algorithm.gamma = '0' is not allowed: expected a number > 0" \
  "algorithm={name: choco_sgd, gamma: 0}"

# Differential privacy (docs/algorithms.md §6).
dpc="$SRC/tests/configs/dp.yaml"
check_bad dp_delta "$dpc" "privacy.delta = 1 is not allowed: delta must be in (0, 1)" privacy.delta=1
check_bad dp_target "$dpc" "privacy.target_epsilon = '0' is not allowed: expected a number > 0" \
  privacy.target_epsilon=0
check_bad dp_clip "$dpc" "privacy.clip = '-1' is not allowed: expected a number > 0" privacy.clip=-1
check_bad dp_q "$dpc" "clients.fraction = '1.5' is not allowed: expected a number in (0, 1]" \
  clients.fraction=1.5
check_bad dp_uniform "$dpc" \
  "privacy.name = dp_fedavg is accounted as the sampled Gaussian mechanism, which needs each client sampled independently: set clients.sampling = poisson" \
  clients.sampling=uniform
check_bad dp_calibrate "$dpc" "privacy.calibrate = true needs a finite privacy.target_epsilon to calibrate to" \
  privacy.calibrate=true
# dp_sgd (Note [DP-SGD]).
dps="privacy={name: dp_sgd, clip: 0.5, noise_multiplier: 0.8, sample_rate: 0.2}"
check_bad dpsgd_q0 "$dpc" "privacy.sample_rate = '0' is not allowed: expected a number in (0, 1]" \
  "$dps" privacy.sample_rate=0
check_bad dpsgd_q "$dpc" "privacy.sample_rate = '1.5' is not allowed: expected a number in (0, 1]" \
  "$dps" privacy.sample_rate=1.5
check_bad dpsgd_clip "$dpc" "privacy.clip = '0' is not allowed: expected a number > 0" "$dps" \
  privacy.clip=0
check_bad dpsgd_target "$dpc" "privacy.target_epsilon = '-2' is not allowed: expected a number > 0" \
  "$dps" privacy.target_epsilon=-2
check_bad dpsgd_delta "$dpc" "privacy.delta = 1 is not allowed: delta must be in (0, 1)" "$dps" \
  privacy.delta=1
check_bad dpsgd_inf "$dpc" \
  "privacy.clip = .inf is allowed only with privacy.noise_multiplier = 0 (the noise's standard deviation is sigma C), not 0.8" \
  "$dps" privacy.clip=.inf
check_bad dpsgd_scaffold "$dpc" \
  "privacy.name = dp_sgd makes the clients' local steps private: algorithm.name must be fedavg, fedprox or sgd, not scaffold" \
  "$dps" algorithm.name=scaffold
check_bad dpsgd_key "$dpc" "clip_scope" "$dps" privacy.clip_scope=layer
check_bad poisson_count "$dpc" \
  "clients.sampling = poisson samples each client with probability clients.fraction: leave clients.per_round at 0" \
  clients.per_round=5
check_bad poisson_krum "$dpc" \
  "clients.sampling = poisson gives each round a varying number of clients" \
  "privacy={name: none}" aggregator.name=krum

check_bad averaging_start good.yaml \
  "averaging.start = 10 leaves no round to average: it must be below rounds = 10" \
  averaging.name=weighted averaging.start=10 rounds=10
check_bad schedule_shift good.yaml "algorithm.lr_schedule.shift = '0' is not allowed: expected a number > 0" \
  algorithm.lr_schedule.name=inverse_time algorithm.lr_schedule.shift=0
# Secure aggregation (Note [Secure aggregation]).
sac="$SRC/tests/configs/secagg.yaml"
check_bad secagg_threshold "$sac" \
  "secagg.threshold = 31 exceeds the 30 clients a round can sample: allowed 1 to 30, or 0 for a majority of each round's clients" \
  secagg.threshold=31
check_bad secagg_threshold_uniform "$sac" \
  "secagg.threshold = 9 exceeds the 8 clients a round can sample: allowed 1 to 8" \
  "privacy={name: none}" secagg.clip=1 clients.sampling=uniform clients.per_round=8 secagg.threshold=9
check_bad secagg_krum "$sac" \
  "secagg.name = bonawitz reveals only the sum of the clients' updates, never one of them: aggregator.name = krum needs the individual messages; use mean" \
  "privacy={name: none}" secagg.clip=1 clients.sampling=uniform clients.per_round=8 aggregator.name=krum
check_bad secagg_topk "$sac" \
  "secagg.name = bonawitz sums quantized vectors mod 2^32: compressor.name = topk encodes each client's message on its own" \
  "privacy={name: none}" secagg.clip=1 compressor.name=topk compressor.ratio=0.1
check_bad secagg_scaffold "$sac" \
  "secagg.name = bonawitz masks each client's model update x - y_i: algorithm.name must be fedavg or fedprox, not scaffold" \
  "privacy={name: none}" secagg.clip=1 algorithm.name=scaffold
check_bad secagg_no_clip "$sac" \
  "secagg.name = bonawitz quantizes updates clipped to a bound: set secagg.clip > 0" \
  "privacy={name: none}"
check_bad secagg_two_clips "$sac" \
  "secagg.clip must be 0 with privacy.name = dp_fedavg, whose privacy.clip bounds the updates" \
  secagg.clip=1
check_bad secagg_bits "$sac" \
  "secagg.fraction_bits = 30 would let the sum of 30 clients' updates up to R = 3.7 wrap 2^31: allowed 1 to 24 (or 0: the largest)" \
  secagg.fraction_bits=30
check_bad secagg_dropout "$sac" \
  "secagg.dropout = 1 is not allowed: a probability in [0, 1)" secagg.dropout=1
check_bad secagg_late_dropout "$sac" \
  "secagg.late_dropout = 1 is not allowed: a probability in [0, 1)" secagg.late_dropout=1

check_bad schedule_factor good.yaml \
  "algorithm.lr_schedule.factor = '0' is not allowed: expected a number > 0" \
  algorithm.lr_schedule.name=step algorithm.lr_schedule.factor=0

# comm.backend = self is a usage error only with several ranks.
capture self_backend "$MPIEXEC" -n 2 --oversubscribe --allow-run-as-root "$COHORT" run good.yaml \
  comm.backend=self
expect_usage_error "comm.backend=self under 2 ranks" self_backend \
  "comm.backend = self runs one process, but 2 ranks were launched"

# ---- the command line itself ----------------------------------------------------------------
# A bad command line is a usage error too: exit code 2, one "cohort: error:" line.
check_cli_usage() {  # LABEL EXPECTED ARGS...
  local label=$1 expected=$2
  shift 2
  capture cli "$COHORT" "$@"
  expect_usage_error "$label" cli "$expected"
}
check_cli_usage "no arguments" "A subcommand is required"
check_cli_usage "unknown subcommand" "cohort: error: " frobnicate
check_cli_usage "run without a config" "config is required" run
check_cli_usage "unknown option" "--bogus" list --bogus

check_cli_usage "privacy without q" "--q is required" privacy --steps 10 --sigma 1
check_cli_usage "privacy q out of range" "--q = 1.5 is not allowed: the sampling rate must be in (0, 1]" \
  privacy --q 1.5 --steps 10 --sigma 1
check_cli_usage "privacy delta" "--delta = 1 is not allowed: delta must be in (0, 1)" \
  privacy --q 0.1 --steps 10 --sigma 1 --delta 1
check_cli_usage "privacy target" "--target-epsilon = -1 is not allowed: it must be > 0" \
  privacy --q 0.1 --steps 10 --target-epsilon -1
check_cli_usage "privacy both" "give exactly one of --sigma" privacy --q 0.1 --steps 10 --sigma 1 \
  --target-epsilon 2
capture privacy "$COHORT" privacy --q 0.0042666667 --sigma 1.1 --steps 14063 --delta 1e-5
checks=$((checks + 1))
[[ $rc -eq 0 ]] || fail "privacy: exit code $rc, expected 0"
grep -q '^epsilon 3\.009.* at delta 1e-05 (order 9)' "$tmp/privacy.out" ||
  fail "privacy: expected epsilon 3.009 at order 9, got: $(snippet "$tmp/privacy.out")"

check_cli_usage "invert without a config" "--config is required" attack-privacy invert --out x.h5
check_cli_usage "invert batch" "--batch = 0 is not allowed" attack-privacy invert \
  --config "$dpc" --batch 0 --out "$tmp/inv.h5"
check_cli_usage "invert client" "--client = 30 is not allowed: the problem has clients 0..29" \
  attack-privacy invert --config "$dpc" --client 30 --out "$tmp/inv.h5"
check_cli_usage "membership without a run" "is not a cohort results file" attack-privacy \
  membership --run "$tmp/none.h5"

capture version "$COHORT" --version
checks=$((checks + 1))
[[ $rc -eq 0 ]] || fail "--version: exit code $rc, expected 0"
grep -q '^cohort 0\.1\.0\b' "$tmp/version.out" ||
  fail "--version: expected 'cohort 0.1.0', got: $(snippet "$tmp/version.out")"

capture help "$COHORT" --help
checks=$((checks + 1))
[[ $rc -eq 0 ]] || fail "--help: exit code $rc, expected 0"
for sub in run validate list; do
  grep -qw "$sub" "$tmp/help.out" || fail "--help does not mention '$sub'"
done

capture list "$COHORT" list
checks=$((checks + 1))
[[ $rc -eq 0 ]] || fail "list: exit code $rc, expected 0"
for a in sgd fedavg fedprox scaffold mime mimelite; do
  grep -qF "algorithm.name: $a" "$tmp/list.out" || fail "list does not mention algorithm '$a'"
done
for s in sgd momentum nesterov adam yogi; do
  grep -qF "server_optimizer.name: $s" "$tmp/list.out" ||
    fail "list does not mention server optimizer '$s'"
done
grep -qF "local_lr" "$tmp/list.out" || fail "list does not mention algorithm.local_lr"

capture markdown "$COHORT" list --markdown
checks=$((checks + 1))
[[ $rc -eq 0 ]] || fail "list --markdown: exit code $rc, expected 0"
grep -qF '| `algorithm.local_lr` | float > 0 | `0.05` |' "$tmp/markdown.out" ||
  fail "list --markdown has no row for algorithm.local_lr"

# ---- a valid config ---------------------------------------------------------------------------
drift="$SRC/configs/quadratic_drift.yaml"
capture valid "$COHORT" validate "$drift"
checks=$((checks + 1))
[[ $rc -eq 0 ]] || fail "validate $drift: exit code $rc, expected 0; stderr: $(snippet "$tmp/valid.err")"
grep -qF "$drift: valid" "$tmp/valid.out" ||
  fail "validate $drift: stdout lacks '$drift: valid': $(snippet "$tmp/valid.out")"
[[ ! -s "$tmp/valid.err" ]] || fail "validate $drift: unexpected stderr: $(snippet "$tmp/valid.err")"

capture valid_mpi "$MPIEXEC" -n 2 --oversubscribe --allow-run-as-root "$COHORT" validate "$drift" \
  rounds=5
checks=$((checks + 1))
[[ $rc -eq 0 ]] || fail "mpiexec -n 2 validate $drift: exit code $rc, expected 0; stderr: $(snippet "$tmp/valid_mpi.err")"
n=$(grep -cF "$drift: valid" "$tmp/valid_mpi.out")
[[ $n -eq 1 ]] || fail "mpiexec -n 2 validate $drift: 'valid' printed $n times, expected once"

if [[ $failures -gt 0 ]]; then
  echo "test_config_errors: $failures failure(s) in $checks checked commands"
  exit 1
fi
echo "test_config_errors: all $checks checked commands passed"
