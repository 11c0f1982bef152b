#!/usr/bin/env bash
# Sweep values are data (Note [Sweep values are data]): hostile values in a sweep file or --out
# reach the run's config unchanged ('#' included), reach bash only quoted, reach sbatch only as
# argument vectors; control characters in anything that becomes a directive are refused naming
# the key; and errors about a base config outside the sweep's directory never quote it.
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect_usage() {  # expect_usage WHAT PATTERN CMD...: exit 2, PATTERN in the message
  local what=$1 pattern=$2 rc=0
  shift 2
  "$@" > "$TMP/msg" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2: $(cat "$TMP/msg")"
  grep -q -- "$pattern" "$TMP/msg" || fail "$what: no '$pattern' in: $(cat "$TMP/msg")"
}
Q=$SRC/configs/quadratic_drift.yaml
# Each payload is a value that bash, sbatch or YAML would read as more than text.
payloads=(
  $'new\nline' $'carriage\rreturn' '$(touch PWNED_dollar)' '`touch PWNED_tick`' 'semi;touch PWNED_semi'
  "single'quote" 'double"quote' 'hash #comment' 'hash#glued' 'back\slash' ' lead space' 'colon: space'
  'null' '' '[not, a, list]' '{not: map}' '&anchor' '*alias' '- dash' '%pct' '!tag' '@at'
)

# 1. Every payload reaches the run's resolved config unchanged, as a swept value (data.path) and
#    as an override (data.test_path); and a run reads exactly the files such values name.
printf 'rounds: 2\ndata: {name: libsvm, path: none.svm}\nclients: {num_clients: 2}\noutput: {progress_every: 0}\n' \
  > "$TMP/libsvm.yaml"
"$PYTHON" - "$TMP/values.yaml" "$TMP/libsvm.yaml" "${payloads[@]}" <<'PY'
import sys, yaml
out, base, values = sys.argv[1], sys.argv[2], sys.argv[3:]
yaml.safe_dump({"base": base, "overrides": {"data.test_path": values[7]},
                "grid": {"data.path": values}}, open(out, "w"))
PY
"$COHORT" sweep "$TMP/values.yaml" --out "$TMP/v" --launcher none > "$TMP/log"
"$PYTHON" - "$TMP/v" "${payloads[@]}" <<'PY'
import csv, json, sys, yaml
d, values = sys.argv[1], sys.argv[2:]
rows = list(csv.DictReader(open(f"{d}/manifest.csv", newline="")))
runs = json.load(open(f"{d}/manifest.json"))["runs"]
assert len(rows) == len(runs) == len(values), (len(rows), len(values))
for v, row, run in zip(values, rows, runs):
    data = yaml.safe_load(open(row["config"]))["data"]
    assert data["path"] == v, f"swept {v!r} became {data['path']!r}"
    assert data["test_path"] == values[7], f"override {values[7]!r} became {data['test_path']!r}"
    assert row["data.path"] == v and run["values"]["data.path"] == v, (v, row, run)
print(f"{len(values)} payload values reach config.yaml, manifest.csv and manifest.json unchanged")
PY
mkdir "$TMP/data"
names=('a #b.svm' 'c#d.svm' "e'f\"g.svm" 'h;i $(j).svm' 'null')
for n in "${names[@]}" 'test #1.svm'; do printf '1 1:0.5\n0 1:-0.5\n1 1:0.7\n0 1:-0.1\n' > "$TMP/data/$n"; done
"$PYTHON" - "$TMP/data.yaml" "$TMP/libsvm.yaml" "$TMP/data" "${names[@]}" <<'PY'
import sys, yaml
out, base, d, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
yaml.safe_dump({"base": base, "overrides": {"data.test_path": f"{d}/test #1.svm"},
                "grid": {"data.path": [f"{d}/{n}" for n in names]}}, open(out, "w"))
PY
"$COHORT" sweep "$TMP/data.yaml" --out "$TMP/d" --launcher local > "$TMP/log" 2>&1 ||
  fail "runs over payload file names: $(cat "$TMP/log" "$TMP"/d/runs/*/log.txt)"
grep -q "5/5 done (0 failed)" "$TMP/log" || fail "not every payload run completed: $(cat "$TMP/log")"
echo "runs read the files the payload values name"

# 2. Directive values: control characters are refused naming the key; the rest is quoted.
for key in partition account time nodes ntasks cpus_per_task; do
  for bad in $'x\n#SBATCH --wrap=touch' $'x\r#SBATCH --mem=1' $'x\x01'; do
    "$PYTHON" -c 'import sys, yaml; yaml.safe_dump({"base": sys.argv[2], "slurm": {sys.argv[3]: sys.argv[4]}}, open(sys.argv[1], "w"))' \
      "$TMP/bad.yaml" "$Q" "$key" "$bad"
    for launcher in slurm local none; do
      expect_usage "slurm.$key" "slurm.$key" "$COHORT" sweep "$TMP/bad.yaml" --out "$TMP/bad" --launcher $launcher
    done
  done
done
for bad in 'touch /tmp/x' $'#SBATCH --a\n#SBATCH --b' $'#SBATCH --a\rrm -rf x'; do
  "$PYTHON" -c 'import sys, yaml; yaml.safe_dump({"base": sys.argv[2], "slurm": {"extra": [sys.argv[3]]}}, open(sys.argv[1], "w"))' \
    "$TMP/bad.yaml" "$Q" "$bad"
  expect_usage "slurm.extra" "slurm.extra\[0\]" "$COHORT" sweep "$TMP/bad.yaml" --out "$TMP/bad" --launcher slurm
done
for ok in 'b;c' 'p$(touch PWNED_p)' 'q`touch PWNED_q`' "r'\"s" 't #u' 'v w'; do
  "$PYTHON" -c 'import sys, yaml; yaml.safe_dump({"base": sys.argv[2], "overrides": {"rounds": 2}, "slurm": {"partition": sys.argv[3], "account": sys.argv[3]}}, open(sys.argv[1], "w"))' \
    "$TMP/ok.yaml" "$Q" "$ok"
  rm -rf "$TMP/ok"
  "$COHORT" sweep "$TMP/ok.yaml" --out "$TMP/ok" --launcher slurm > /dev/null
  n=$(grep -c '^#SBATCH' "$TMP/ok/sweep.sbatch")
  [ "$n" -eq 11 ] || fail "partition '$ok': $n #SBATCH lines, expected 11 (9 + signal, requeue): $(cat "$TMP/ok/sweep.sbatch")"
  bash -n "$TMP/ok/sweep.sbatch" || fail "partition '$ok': the script is not valid bash"
done
[ -z "$(find "$TMP" -name 'PWNED*')" ] || fail "a payload was executed: $(find "$TMP" -name 'PWNED*')"
echo "directive values: control characters refused by key, others quoted"

# 3. --out reaches the script's shell lines quoted and sbatch as one argument. A fake srun records
#    what the script would run, a fake sbatch and squeue record their argument vectors.
mkdir "$TMP/bin"
cat > "$TMP/bin/srun" <<'SH'
#!/bin/bash
printf '%s\n' "$@" > "$FAKE_LOG"
SH
cat > "$TMP/bin/sbatch" <<'SH'
#!/bin/bash
printf '%s\n' "$@" > "$FAKE_LOG"
echo "4242;cluster"
SH
cat > "$TMP/bin/squeue" <<'SH'
#!/bin/bash
cat "$FAKE_QUEUE" 2>/dev/null || true
SH
chmod +x "$TMP/bin"/*
printf 'base: %s\noverrides: {rounds: 2}\nslurm: {launch: srun}\n' "$Q" > "$TMP/s.yaml"
for out in 'o;touch PWNED_o' 'o$(touch PWNED_d)' 'o`touch PWNED_t`' "o'q" 'o"q' 'o #c' 'o %A %%' 'o\b' 'o space'; do
  O="$TMP/out/$out"
  rm -rf "$TMP/out"
  PATH="$TMP/bin:$PATH" FAKE_LOG="$TMP/sbatch.args" FAKE_QUEUE="$TMP/none" \
    "$COHORT" sweep "$TMP/s.yaml" --out "$O" --launcher slurm --submit > "$TMP/log" 2>&1 ||
    fail "--out '$out': $(cat "$TMP/log")"
  printf '%s\n' --parsable "$O/sweep.sbatch" | diff - "$TMP/sbatch.args" > /dev/null ||
    fail "--out '$out': sbatch got: $(cat "$TMP/sbatch.args")"
  [ "$(cat "$O/slurm_job_id")" = 4242 ] || fail "--out '$out': job id $(cat "$O/slurm_job_id")"
  id=$(head -n 1 "$O/pending.txt")
  (cd "$TMP" && PATH="$TMP/bin:$PATH" FAKE_LOG="$TMP/srun.args" SLURM_ARRAY_TASK_ID=0 SLURM_NTASKS=1 \
    bash "$O/sweep.sbatch") || fail "--out '$out': the script failed"
  printf '%s\n' --mpi=pmix -n 1 "$(readlink -f "$COHORT")" run --resume --overwrite "$O/runs/$id/config.yaml" |
    diff - "$TMP/srun.args" > /dev/null || fail "--out '$out': srun got: $(cat "$TMP/srun.args")"
  [ -e "$O/runs/$id/log.txt" ] || fail "--out '$out': the log went elsewhere"
  # A submitted array that squeue still lists blocks another sweep on the same --out.
  echo 4242 > "$TMP/queue"
  PATH="$TMP/bin:$PATH" FAKE_LOG="$TMP/sbatch.args" FAKE_QUEUE="$TMP/queue" \
    expect_usage "--out '$out' while queued" "job array 4242 .* still queued" \
    "$COHORT" sweep "$TMP/s.yaml" --out "$O" --launcher slurm --submit
done
[ -z "$(find "$TMP" -name 'PWNED*')" ] || fail "a payload was executed: $(find "$TMP" -name 'PWNED*')"
for bad in $'o\nx' $'o\rx'; do
  expect_usage "--out with a control character" "--out" \
    "$COHORT" sweep "$TMP/s.yaml" --out "$TMP/$bad" --launcher slurm
done
echo "--out: quoted in the script, one argument to sbatch, control characters refused"

# 4. A base config outside the sweep's directory: messages never quote it.
mkdir -p "$TMP/sweeps" "$TMP/secret"
bases=(
  $'root:x:0:0:SECRET_A:/root:/bin/bash\ndaemon:x:1:1:SECRET_B:/usr/sbin'
  'SECRET_C'
  $'rounds: SECRET_D\n'
  $'SECRET_E: 1\n'
  $'data: SECRET_F\n'
  $'algorithm: {name: SECRET_G}\n'
  $'clients: {num_clients: 987654, per_round: 9876543}\n'
  $'a: [SECRET_H\n'
  $'data: {name: quadratic, h: [SECRET_I]}\n'
)
i=0
for text in "${bases[@]}"; do
  i=$((i + 1))
  printf '%s' "$text" > "$TMP/secret/base$i.yaml"
  ln -sf "$TMP/secret/base$i.yaml" "$TMP/sweeps/link$i.yaml"
  printf 'base: %s\n' "$TMP/secret/base$i.yaml" > "$TMP/sweeps/abs.yaml"
  printf 'base: ../secret/base%s.yaml\n' $i > "$TMP/sweeps/rel.yaml"
  printf 'base: link%s.yaml\n' $i > "$TMP/sweeps/link.yaml"
  for sweep in abs rel link; do
    expect_usage "base $i ($sweep)" "base" "$COHORT" sweep "$TMP/sweeps/$sweep.yaml" --out "$TMP/x" --launcher none
    ! grep -q "SECRET\|98765" "$TMP/msg" || fail "base $i ($sweep) leaked: $(cat "$TMP/msg")"
  done
done
mkfifo "$TMP/secret/fifo"
for special in "$TMP/secret/fifo" /dev/zero "$TMP/secret"; do
  printf 'base: %s\n' "$special" > "$TMP/sweeps/special.yaml"
  expect_usage "base $special" "is not a regular file" timeout 10 "$COHORT" sweep "$TMP/sweeps/special.yaml" --out "$TMP/x"
done
for key in '"a=b"' '"x\ny"' '""' '[a]'; do
  printf 'base: %s\ngrid: {%s: [1]}\n' "$Q" "$key" > "$TMP/sweeps/key.yaml"
  expect_usage "grid key $key" "is not a dotted config key" "$COHORT" sweep "$TMP/sweeps/key.yaml" --out "$TMP/x"
  printf 'base: %s\noverrides: {%s: 1}\n' "$Q" "$key" > "$TMP/sweeps/key.yaml"
  expect_usage "override key $key" "is not a dotted config key" "$COHORT" sweep "$TMP/sweeps/key.yaml" --out "$TMP/x"
done
# Inside the sweep's directory the same base is quoted as usual, and with an outside base an
# error that comes from the sweep's own values is shown in full.
cp "$TMP/secret/base3.yaml" "$TMP/sweeps/inside.yaml"
printf 'base: inside.yaml\n' > "$TMP/sweeps/in.yaml"
expect_usage "inside base" "SECRET_D" "$COHORT" sweep "$TMP/sweeps/in.yaml" --out "$TMP/x" --launcher none
printf 'base: %s\ngrid: {algorithm.local_lr: [0.1, -1]}\n' "$Q" > "$TMP/sweeps/own.yaml"
expect_usage "own value" "algorithm.local_lr = '-1' is not allowed" \
  "$COHORT" sweep "$TMP/sweeps/own.yaml" --out "$TMP/x" --launcher none
echo "base outside the sweep: never quoted"
echo "sweep values: all checks passed"
