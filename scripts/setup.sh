#!/usr/bin/env bash
# Installs what akida-rs needs to build and test on a fresh Debian machine.
# Idempotent: every step is skipped when its result is already present, so a
# re-run is fast and needs no network when nothing is missing.
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages: HDF5 for Keras .h5 files, QEMU for the firmware tests, a
# C compiler for QEMU's instruction-counting plugin (scripts/qemu_icount.c),
# and QEMU user mode with an aarch64 linker and C library, which run the core
# tests on an emulated ARM64 CPU (the NEON dot-product kernels).
apt_pkgs=(libhdf5-dev pkg-config qemu-system-arm gcc libc6-dev
  qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "Debian packages present"
fi

# CMake >= 3.26 builds the HDF5 2.x that hdf5-metno's `static` feature
# bundles (Debian 12 ships 3.25): from PyPI when the system one is older,
# linked into /usr/local/bin so every build finds it first.
cmake_ok() {
  local v
  v=$(cmake --version 2>/dev/null | sed -n 's/^cmake version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] && set -- $v && { [ "$1" -gt 3 ] || { [ "$1" -eq 3 ] && [ "$2" -ge 26 ]; }; }
}
if cmake_ok; then
  say "cmake $(cmake --version | head -1 | cut -d' ' -f3) present"
else
  say "installing cmake >= 3.26 (pip)"
  python3 -m pip install --quiet "cmake>=3.26,<4"
  bin=$(python3 -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, "cmake"))')
  $SUDO ln -sf "$bin" /usr/local/bin/cmake
  hash -r
  cmake_ok || { say "cmake >= 3.26 is still not the first cmake on PATH"; exit 1; }
fi

# Rust target of the firmware (Cortex-M4F).
if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
  say "adding rust target thumbv7em-none-eabihf"
  rustup target add thumbv7em-none-eabihf
else
  say "rust target thumbv7em-none-eabihf present"
fi

# Rust target of ARM64 hosts (the core tests run on it under QEMU user mode).
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  say "adding rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
else
  say "rust target aarch64-unknown-linux-gnu present"
fi

# Python packages used only by test scripts that check our files with the
# reference readers (h5py reads our .h5 output).
if ! python3 -c 'import numpy, h5py' >/dev/null 2>&1; then
  say "installing numpy h5py (pip)"
  python3 -m pip install --quiet numpy h5py
else
  say "python numpy/h5py present"
fi
# Optional: BrainChip's engine (akida 2.19.3, PyPI) in a virtual environment,
# so the tests also load our .fbz files in it (tests/tests/fbz.rs). Best
# effort: without network the tests that need it say they skipped.
AKIDA_VENV="${AKIDA_VENV:-/tmp/akida-venv}"
if "$AKIDA_VENV/bin/python" -c 'import akida' >/dev/null 2>&1; then
  say "akida engine present in $AKIDA_VENV"
elif python3 -m venv "$AKIDA_VENV" >/dev/null 2>&1 \
  && "$AKIDA_VENV/bin/pip" install --quiet "akida==2.19.3" >/dev/null 2>&1; then
  say "installed akida==2.19.3 in $AKIDA_VENV"
else
  say "could not install akida==2.19.3 (no network?): engine checks will be skipped"
fi
say "done"
