#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test with CTest
# (unit tests, multi-rank tests at 1, 2 and 4 ranks, end-to-end tests of the executable).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

scripts/install_deps.sh
echo "[test] building (Release, build/)"
scripts/build.sh
echo "[test] ctest"
ctest --preset release "$@"
