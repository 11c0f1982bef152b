#!/usr/bin/env bash
# Configures and builds the Release tree in build/ (CMake preset "release").
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release -j "${COHORT_BUILD_JOBS:-$(nproc)}"
