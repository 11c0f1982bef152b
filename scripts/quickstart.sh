#!/usr/bin/env bash
# The main job: install what is missing, build, run a small federated experiment on 2 MPI
# ranks (FedAvg, MLP, Fashion-MNIST, 10 clients with Dirichlet(0.5) label skew) and plot it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

scripts/install_deps.sh
echo "[quickstart] building (Release, build/)"
scripts/build.sh
echo "[quickstart] mpirun -np 2 build/cohort run --overwrite configs/quickstart.yaml"
mpirun -np 2 build/cohort run --overwrite configs/quickstart.yaml
/usr/bin/python3 scripts/plot.py results/quickstart/metrics.h5 -o results/quickstart/accuracy.png
echo
echo "[quickstart] results file: $(pwd)/results/quickstart/metrics.h5"
echo "[quickstart] plot:         $(pwd)/results/quickstart/accuracy.png"
