#!/usr/bin/env bash
# Installs the Debian 12 packages cohort needs, only those that are missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git zlib1g-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libeigen3-dev catch2 libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  libsodium-dev
  python3-h5py python3-matplotlib python3-numpy
  dataset-fashion-mnist
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "[deps] missing packages: ${missing[*]}; run this script as root or install them" >&2
    exit 1
  fi
fi
echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
