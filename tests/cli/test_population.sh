#!/usr/bin/env bash
# Population scale (Note [Population scale] in src/algo/runner.cpp):
#  - the pool partition at 200,000 clients, 20 a round, with top-k and error feedback: identical
#    results at 1, 2 and 4 ranks, every client holding samples_per_client rows, and per-client
#    result rows only for the sampled clients (aligned with /clients/sampled);
#  - memory: 2,000,000 clients cost at most 64 bytes per client more than 10,000 (peak RSS);
#  - without the pool partition, more clients than rows is an error that names the pool;
#  - the per-client state account: printed, and checked against clients.state_budget_mib.
set -euo pipefail
: "${COHORT:?} ${MPIEXEC:?} ${PYTHON:?} ${SRC:?}"
CFG="$SRC/tests/configs/population_inline.yaml"
source "$SRC/tests/cli/lib.sh"

same_at_1_2_4 pool
"$PYTHON" - "$TMP/pool.np1.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["status"] == "completed"
    assert f["clients/num_samples"].shape == (200000,)
    assert (f["clients/num_samples"][()] == 3).all()
    s, bits = f["clients/sampled"][()], f["clients/uplink_bits"][()]
    assert s.shape == bits.shape == (4, 20), (s.shape, bits.shape)
    assert ((s[:, 1:] > s[:, :-1]).all() and s.min() >= 0 and s.max() < 200000)
    assert (bits > 0).all() and (bits.sum(axis=1) == f["rounds/uplink_bits"][()]).all()
    # 80 draws from 200,000 clients: the rounds' samples are not all the same clients
    assert len(np.unique(s)) > 70, len(np.unique(s))
PY
echo "pool: 200,000 clients, identical at 1, 2 and 4 ranks, rows for the sampled clients only"

rss() {  # rss CLIENTS: peak RSS (MiB) of a 2-round run with that population
  "$COHORT" run "$CFG" clients.num_clients="$1" rounds=2 compressor.error_feedback=false \
    output.path="$TMP/rss$1.h5" > /dev/null
  "$PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['peak_rss_mib_max'])" "$TMP/rss$1.h5"
}
small=$(rss 10000)
large=$(rss 2000000)
"$PYTHON" - "$small" "$large" <<'PY'
import sys
small, large = map(float, sys.argv[1:])
per_client = (large - small) * 2**20 / (2000000 - 10000)
print(f"memory: {per_client:.1f} bytes per client (peak RSS {small:.0f} -> {large:.0f} MiB)")
assert per_client <= 64, per_client
PY

set +e
msg=$("$COHORT" validate "$SRC/configs/quickstart.yaml" clients.num_clients=100000 clients.per_round=10 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "data.partition.name = pool" <<< "$msg" || { echo "FAIL: $rc $msg"; exit 1; }
# The per-client state account (Note [Client state account]): quickstart's MLP has 101,770
# parameters, so error feedback is 407,080 bytes a client and 512 MiB hold floor(536870912 /
# 407080) = 1318 clients. The worst case on a rank is min(ceil(N / ranks), rounds x per_round).
Q=("$SRC/configs/quickstart.yaml" compressor.name=topk compressor.ratio=0.01
   compressor.error_feedback=true clients.num_clients=10000 clients.per_round=100
   clients.state_budget_mib=512)
expect_usage budget1 "up to 10000 clients on a rank: 3.8 GiB per rank (the largest slot: error feedback); at most 1318 clients" \
  "$COHORT" validate "${Q[@]}" rounds=1000
expect_usage budget2 "up to 5000 clients on a rank" "${MPI[@]}" -n 2 "$COHORT" validate "${Q[@]}" rounds=1000
"$COHORT" validate "${Q[@]}" rounds=10 > /dev/null    # 10 x 100 = 1000 clients: 388 MiB fits
"$COHORT" run "${Q[@]}" rounds=1 clients.num_clients=10 clients.per_round=10 algorithm.client_momentum=0.9 \
  output.path="$TMP/acct.h5" > "$TMP/acct.log"
grep -q "client state: error feedback 397.5 KiB + worker momentum 397.5 KiB per client, up to 10 clients on a rank: 7.8 MiB per rank" "$TMP/acct.log"
[ $failures -eq 0 ] || exit 1
echo "client state: the account is printed and the budget names the slot and what fits"

# Hostile values of the new keys (clients.threads too) and of --np: exit 2 naming the key, never
# a crash.
i=0
for o in clients.state_budget_mib=-1 clients.state_budget_mib=abc clients.state_budget_mib=99999999999999 \
         data.partition.samples_per_client=0 data.partition.samples_per_client=x \
         data.partition.samples_per_client=4294967297 "data.partition.samples_per_client=[]" \
         clients.threads=0 clients.threads=-2 clients.threads=abc clients.threads=99999999999 \
         "clients.threads=[]" clients.threads=1.5; do
  i=$((i + 1))
  expect_usage "key$i" "${o%%=*}" "$COHORT" validate "$CFG" "$o"
done
for a in 0 x -3 99999999; do
  expect_usage "np$a" "--np" "$COHORT" run --np "$a" "$CFG"
done
[ $failures -eq 0 ] || exit 1
echo "population: hostile values of the new keys and of --np are usage errors"
echo "population: all checks passed"
