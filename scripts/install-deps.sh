#!/usr/bin/env bash
# Installs the Debian packages attnc needs to build and test, skipping apt entirely when they
# are all present. Used by scripts/setup.sh and scripts/test.sh; safe to run again.
#
# Needs Debian 12 (bookworm) and root, or sudo. Nothing is fetched from outside apt; the CUDA
# toolkit is expected at /usr/local/cuda and is optional (without it the CUDA backend is off).
set -euo pipefail

# cmake, ninja-build, g++: the build.  libfmt-dev: formatting.  catch2: the test suite (2.13).
# llvm-14-dev: the LLVM CPU backend (found at configure time).  clang: libFuzzer targets.
# libopenblas-dev, pkg-config: the sgemm ceiling of `attnc bench` (optional at configure time).
# libdlpack-dev: DLPack's header, for Tensor::from_dlpack / to_dlpack (optional at configure time).
# libcli11-dev, nlohmann-json3-dev: attnc's command lines and JSON (header-only).
# openmpi-bin, libopenmpi-dev: ring attention over MPI (distributed/; optional at configure time).
packages=(cmake ninja-build g++ libfmt-dev catch2 llvm-14-dev clang libopenblas-dev pkg-config libdlpack-dev
  libcli11-dev nlohmann-json3-dev openmpi-bin libopenmpi-dev)

missing=()
for package in "${packages[@]}"; do
  # dpkg -s also succeeds for removed-but-configured packages; require "install ok installed".
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present (${packages[*]})"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: done"
