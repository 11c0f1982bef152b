#!/usr/bin/env bash
# oneDNN against cohort's im2col + Eigen convolutions (results/bench_onednn.md): the conv layers
# of cnn_mnist and resnet20, forward and backward (data + weights), batch 32, one thread.
# Needs the Debian package libdnnl-dev (the measurement only; cohort does not link oneDNN).
# COHORT: the default build's binary; NATIVE: optionally a COHORT_NATIVE=ON build's, e.g.
#   cmake -S . -B build-native -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOHORT_NATIVE=ON \
#     -DCOHORT_BUILD_TESTS=OFF && cmake --build build-native --target cohort
#   NATIVE=build-native/cohort scripts/bench_onednn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
NATIVE=${NATIVE:-}
OUT=${OUT:-results/bench_onednn.md}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
g++ -O3 -DNDEBUG -std=c++17 scripts/bench_onednn.cpp -ldnnl -o "$TMP/bench_onednn"
OMP_NUM_THREADS=1 "$TMP/bench_onednn" 10 > "$TMP/onednn.jsonl"
"$COHORT" bench train --repeats 10 --json "$TMP/eigen.json" > /dev/null
[ -z "$NATIVE" ] || "$NATIVE" bench train --repeats 10 --json "$TMP/native.json" > /dev/null
/usr/bin/python3 - "$TMP" "$OUT" "$NATIVE" <<'PY'
import json, os, subprocess, sys
tmp, out, native = sys.argv[1], sys.argv[2], sys.argv[3]
dnn = [json.loads(l) for l in open(f"{tmp}/onednn.jsonl")]
def rows(path):
    d = json.load(open(path))
    return d, {r["what"]: r for r in d["rows"]}
eig, e = rows(f"{tmp}/eigen.json")
nat, n = rows(f"{tmp}/native.json") if native else (None, {})
version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libdnnl-dev"],
                         capture_output=True, text=True).stdout
cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
lines = [
    "# oneDNN against im2col + Eigen (`scripts/bench_onednn.sh`)", "",
    f"Machine: {cpu}, one thread (OMP_NUM_THREADS=1), batch 32, best of 10 after a warm-up; "
    f"oneDNN {version} (Debian libdnnl-dev); Eigen as built by cohort: default flags "
    f"({eig['eigen_simd']}, sgemm {eig['sgemm_gflops']:.1f} GFLOP/s)"
    + (f" and COHORT_NATIVE=ON ({nat['eigen_simd']}, sgemm {nat['sgemm_gflops']:.1f} GFLOP/s)"
       if nat else "") + ".",
    "Times in ms per batch of 32; backward is data + weights (+ bias) gradients. oneDNN plain: "
    "nchw activations and oihw weights, as cohort's buffers hold them; oneDNN any: the blocked "
    "layouts it prefers (reorders to and from them not counted).", "",
    "| layer | pass | Eigen default | " + ("Eigen native | " if nat else "")
    + "oneDNN plain | oneDNN any |",
    "|---|---|---:|" + ("---:|" if nat else "") + "---:|---:|"]
by = {}
for r in dnn:
    by.setdefault(r["layer"], {})[r["layout"]] = r
for layer, d in by.items():
    for p, key in (("forward", "forward_ms"), ("backward", "backward_ms")):
        cells = [f"{e[layer + ' ' + p]['seconds'] * 1e3:.2f}"]
        if nat:
            cells.append(f"{n[layer + ' ' + p]['seconds'] * 1e3:.2f}")
        cells += [f"{d['nchw/oihw'][key]:.2f}", f"{d['any'][key]:.2f}"]
        lines.append(f"| {layer} | {p} | " + " | ".join(cells) + " |")
open(out, "w").write("\n".join(lines) + "\n")
print(open(out).read())
PY
