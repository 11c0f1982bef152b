#!/usr/bin/env bash
# `cohort sweep`: expansion (grid x zip x seeds), validation before anything starts, the local
# launcher, resuming, and the generated SLURM script.
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

cat > "$TMP/sweep.yaml" <<YAML
base: $SRC/configs/quadratic_drift.yaml
overrides: {rounds: 20, output.progress_every: 0}
grid:
  algorithm.local_steps: [1, 10]
zip:
  algorithm.local_lr: [0.05, 0.02]
  server_optimizer.lr: [1.0, 0.5]
seeds: [3, 4]
np: 2
slurm: {ntasks: 2, time: "00:05:00", launch: mpirun, extra: ["#SBATCH --comment=cohort-test"]}
YAML

# 1. Expansion and the local launcher: 2 x 2 x 2 = 8 runs.
"$COHORT" sweep "$TMP/sweep.yaml" --out "$TMP/sw" --launcher local --jobs 2 | tee "$TMP/log"
grep -q "8 runs (0 completed, 8 to run), 2 ranks each" "$TMP/log"
grep -q "8/8 done (0 failed)" "$TMP/log"
"$PYTHON" - "$TMP/sw" <<'PY'
import csv, sys, h5py
rows = list(csv.DictReader(open(f"{sys.argv[1]}/manifest.csv")))
assert len(rows) == 8, len(rows)
assert list(rows[0])[:5] == ["run_id", "algorithm.local_steps", "algorithm.local_lr", "server_optimizer.lr", "seed"], list(rows[0])
combos = {(r["algorithm.local_steps"], r["algorithm.local_lr"], r["server_optimizer.lr"], r["seed"]) for r in rows}
assert combos == {(k, lr, slr, s) for k in ("1", "10") for lr, slr in (("0.05", "1.0"), ("0.02", "0.5")) for s in ("3", "4")}, combos
for r in rows:
    with h5py.File(r["results"], "r") as f:
        assert f.attrs["status"] == "completed"
        cfg = f.attrs["config"]
        assert f"local_steps: {r['algorithm.local_steps']}" in cfg and f"seed: {r['seed']}" in cfg, cfg
        assert len(f["rounds/round"]) == 20
print("manifest and results agree for 8 runs")
PY

# 2. Resuming: nothing to run; a removed results file is run again, alone.
"$COHORT" sweep "$TMP/sweep.yaml" --out "$TMP/sw" --launcher local | grep -q "nothing to run"
rm "$TMP"/sw/runs/r005_*/metrics.h5
"$COHORT" sweep "$TMP/sweep.yaml" --out "$TMP/sw" --launcher local | tee "$TMP/log2"
grep -q "8 runs (7 completed, 1 to run)" "$TMP/log2"
grep -q "1/1 done (0 failed) | r005_" "$TMP/log2"

# 3. The SLURM launcher writes a job array over the pending runs (not submitted here).
rm "$TMP"/sw/runs/r001_*/metrics.h5 "$TMP"/sw/runs/r006_*/metrics.h5
"$COHORT" sweep "$TMP/sweep.yaml" --out "$TMP/sw" --launcher slurm > /dev/null
grep -q "^#SBATCH --array=0-1$" "$TMP/sw/sweep.sbatch"
grep -q "^#SBATCH --ntasks=2$" "$TMP/sw/sweep.sbatch"
grep -q "^#SBATCH --comment=cohort-test$" "$TMP/sw/sweep.sbatch"
grep -q "mpirun -np \"\$SLURM_NTASKS\"" "$TMP/sw/sweep.sbatch"
[ "$(cat "$TMP/sw/pending.txt" | wc -l)" -eq 2 ]

# 4. A bad combination is found before anything runs, naming the run and the key.
cat > "$TMP/bad.yaml" <<YAML
base: $SRC/configs/quadratic_drift.yaml
grid: {algorithm.local_lr: [0.1, -1]}
YAML
set +e
msg=$("$COHORT" sweep "$TMP/bad.yaml" --out "$TMP/bad" 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] || { echo "FAIL: exit $rc"; exit 1; }
grep -q "sweep run r001_local_lr--1 (algorithm.local_lr=-1): .*algorithm.local_lr = '-1' is not allowed" <<< "$msg" ||
  { echo "FAIL: $msg"; exit 1; }
[ ! -e "$TMP/bad" ] || { echo "FAIL: a rejected sweep wrote $TMP/bad"; exit 1; }
printf 'base: %s\ngrdi: {seed: [1]}\n' "$SRC/configs/quadratic_drift.yaml" > "$TMP/typo.yaml"
msg=$("$COHORT" sweep "$TMP/typo.yaml" --out "$TMP/t" 2>&1) && exit 1
grep -q "unknown key 'grdi' (did you mean 'grid'?)" <<< "$msg" || { echo "FAIL: $msg"; exit 1; }
echo "sweep: all checks passed"
