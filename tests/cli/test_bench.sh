#!/usr/bin/env bash
# The benchmark commands on small inputs (no timing is asserted): every rule, compressor and model
# reports a row with a positive rate; with several threads each shardable rule runs on
# coordinate blocks and must give the one-thread result bit for bit (the bench fails otherwise);
# bad options are usage errors.
set -euo pipefail
: "${COHORT:?} ${PYTHON:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$COHORT" bench memory --megabytes 4 --repeats 1 > "$TMP/memory.txt"
grep -Eq "^read +[0-9.]+" "$TMP/memory.txt"
"$COHORT" bench compress --sizes 1000,70001 --repeats 1 --megabytes 4 --json "$TMP/c.json" \
  --powersgd-shapes 40x33,9x100 --powersgd-ranks 1,3 > /dev/null
# 9,000 coordinates are three 4096-coordinate chunks: 2 and 3 threads get uneven blocks.
"$COHORT" bench aggregate --sizes 9000 --clients 7,12 --threads 1,2,3 --repeats 2 --megabytes 4 \
  --json "$TMP/a.json" > /dev/null
"$COHORT" bench train --repeats 1 --json "$TMP/t.json" > /dev/null
"$PYTHON" - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
c = json.load(open(f"{tmp}/c.json"))
names = {r["compressor"] for r in c["rows"]}
for want in ["none", "sign scale=none", "topk ratio=0.01", "randk ratio=0.01", "qsgd s=4 fixed",
             "qsgd s=4 bucket=512", "powersgd per_client r=4", "powersgd ef fused r=3 40x33",
             "powersgd ef steps r=1 9x100"]:
    assert want in names, (want, names)
assert c["powersgd_isa"] in ("avx512", "avx2", "generic"), c
assert all(r["gbs"] > 0 for r in c["rows"])
a = json.load(open(f"{tmp}/a.json"))
rows = {(r["aggregator"], r["threads"], r["n"]) for r in a["rows"]}
rules = ["cm", "tm", "krum", "multikrum", "gm", "cclip", "bulyan"]
for n in (7, 12):
    for rule in rules + ["zeno"]:
        assert (rule, 1, n) in rows, (rule, n)
    for t in (2, 3):
        for rule in rules:
            assert (rule, t, n) in rows, (rule, t, n)
        assert ("zeno", t, n) not in rows  # zeno needs whole messages
assert all(r["gbs"] > 0 and r["ms"] > 0 for r in a["rows"])
t = json.load(open(f"{tmp}/t.json"))
steps = {r["what"] for r in t["rows"]}
for want in ["cnn_mnist step", "lenet5 step", "resnet20 step (28x28)", "mlp [128] step",
             "cnn_mnist conv2 forward", "resnet20 64-64 backward"]:
    assert want in steps, (want, steps)
assert t["sgemm_gflops"] > 0 and t["batch"] == 32 and t["isa"] in ("avx512", "avx2", "generic")
assert all(r["gflops"] > 0 and r["seconds"] > 0 for r in t["rows"])
print("bench: every rule and compressor reported; blocks matched one thread")
PY
# The sums on every path the CPU has, and the exchange at 2 ranks (relaunched under mpiexec).
"$COHORT" bench sum --sizes 5000,70001 --repeats 1 --megabytes 4 --json "$TMP/s.json" > /dev/null
MPIEXEC="$MPIEXEC --oversubscribe --allow-run-as-root" \
  "$COHORT" bench exchange --size 30001 --np 2 --repeats 2 --json "$TMP/x.json" > "$TMP/x.txt"
"$PYTHON" - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
s = json.load(open(f"{tmp}/s.json"))
paths = {r["path"] for r in s["rows"]}
want = {"exact (generic)", "float32 (comm.sum float)", "exact 128-bit words"}
want |= {f"exact ({p})" for p in ("avx2", "avx512") if p == s["cpu_isa"] or (p == "avx2" and s["cpu_isa"] == "avx512")}
assert want <= paths, (want, paths)
assert all(r["add_gbs"] > 0 and r["read_gbs"] > 0 for r in s["rows"])
x = json.load(open(f"{tmp}/x.json"))
assert x["ranks"] == 2 and x["d"] == 30001, x
assert x["raw_ms"] > 0 and x["exact_ms"] > 0 and x["float_ms"] > 0, x
print("bench: sums on every path; exchange at 2 ranks")
PY
grep -q "raw MPI_Allreduce" "$TMP/x.txt"
for bad in "compress --powersgd-shapes 4x1" "compress --powersgd-ranks 0" \
           "aggregate --clients 0" "aggregate --threads x" "aggregate --sizes 0"; do
  set +e
  read -r -a args <<< "$bad"
  msg=$("$COHORT" bench "${args[@]}" 2>&1)
  rc=$?
  set -e
  [ $rc -eq 2 ] || { echo "FAIL: bench $bad exited $rc: $msg"; exit 1; }
done
echo "bench: all checks passed"
