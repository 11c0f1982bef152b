#!/usr/bin/env bash
# PowerSGD with error feedback beside its peer, the steps of PyTorch's DDP PowerSGD hook for one
# tensor (scripts/bench_powersgd_peer.py, one thread): `cohort bench compress --powersgd-only`
# on the best ISA path and on AVX2, and the peer with the BLAS that libblas.so.3 resolves to and,
# when OPENBLAS_DIR names an unpacked OpenBLAS, with OpenBLAS (Gram-Schmidt, and QR as torch's
# hook uses for r > 2). Everything runs ROUNDS times (default 2), alternating, and each row keeps
# its best; then results/bench_powersgd.md is written (scripts/bench_powersgd_table.py). About
# 5 minutes on 2 cores; ~0.5 GB of memory.
#
# OpenBLAS for the peer without installing it for the whole system:
#   apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb /tmp/openblas
#   OPENBLAS_DIR=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread \
#     bash scripts/bench_powersgd.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
OUT=results/bench
mkdir -p "$OUT"
rm -f "$OUT"/powersgd*.json "$OUT"/powersgd*.txt
PEER="/usr/bin/python3 scripts/bench_powersgd_peer.py --repeats 10"
for round in $(seq "${ROUNDS:-2}"); do
  "$COHORT" bench compress --powersgd-only --repeats 20 --json "$OUT/powersgd.$round.json" \
    | tee "$OUT/powersgd.$round.txt"
  if ! COHORT_ISA=avx2 "$COHORT" bench compress --powersgd-only --repeats 20 \
       --json "$OUT/powersgd_avx2.$round.json" > "$OUT/powersgd_avx2.$round.txt"; then
    rm -f "$OUT/powersgd_avx2.$round."*  # this CPU has no AVX2 path
  fi
  $PEER --json "$OUT/powersgd_peer_default_blas.$round.json" \
    | tee "$OUT/powersgd_peer_default_blas.$round.txt"
  if [ -n "${OPENBLAS_DIR:-}" ]; then
    LD_LIBRARY_PATH="$OPENBLAS_DIR" $PEER --json "$OUT/powersgd_peer_openblas.$round.json" \
      | tee "$OUT/powersgd_peer_openblas.$round.txt"
    LD_LIBRARY_PATH="$OPENBLAS_DIR" $PEER --orthogonalize qr \
      --json "$OUT/powersgd_peer_openblas_qr.$round.json" \
      | tee "$OUT/powersgd_peer_openblas_qr.$round.txt"
  fi
done
/usr/bin/python3 scripts/bench_powersgd_table.py
