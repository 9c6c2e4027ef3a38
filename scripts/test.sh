#!/usr/bin/env bash
# Runs every check and test of akida-rs (what CI runs after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n[test] %s\n' "$*"; }

step "format"
cargo fmt --all -- --check
(cd firmware && cargo fmt --all -- --check)

step "clippy (host workspace, all targets)"
cargo clippy --workspace --all-targets -- -D warnings

step "core builds for the Cortex-M4F target and lints clean there (its asm! kernels)"
cargo build -q -p akida-core --target thumbv7em-none-eabihf
cargo clippy -q -p akida-core --target thumbv7em-none-eabihf -- -D warnings

step "core on aarch64 under QEMU user mode (the NEON dot-product path)"
# Cross-built for ARM64 hosts, linted there, and its tests run on an emulated
# CPU with the dot-product and int8 matrix instructions (-cpu max), which
# must offer both NEON instruction sets (AKIDA_EXPECT_SIMD) so that every
# test looping over Simd::available() runs their kernels. The tests take
# about 10 s emulated; the first build and lint about 1.5 min on two cores.
(
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/aarch64"
  cargo clippy -q -p akida-core --all-targets --target aarch64-unknown-linux-gnu -- -D warnings
  AKIDA_EXPECT_SIMD=neon-dotprod,neon-i8mm \
    cargo test -q -p akida-core --target aarch64-unknown-linux-gnu --release
)

step "firmware builds (thumbv7em-none-eabihf) and lints clean"
# The firmware workspace: the akida-embedded library, the QEMU firmware
# without the run-time loader (buffers sized from the embedded model alone)
# and with it (what the tests run), the nRF52840 board. Its build-script
# crate runs on the host (clippy lints it as a build dependency).
(
  cd firmware
  cargo clippy -q --release --workspace --exclude akida-embedded-build -- -D warnings
  cargo build -q --release --no-default-features
  cargo build -q --release --workspace --exclude akida-embedded-build
)

step "tests"
# BrainChip's engine, when scripts/setup.sh could install it, checks our .fbz files.
AKIDA_VENV="${AKIDA_VENV:-/tmp/akida-venv}"
if [ -z "${AKIDA_PYTHON:-}" ] && "$AKIDA_VENV/bin/python" -c 'import akida' >/dev/null 2>&1; then
  export AKIDA_PYTHON="$AKIDA_VENV/bin/python"
fi
cargo test --workspace

step "keyword spotting on the shipped clips: host and Cortex-M4F (QEMU) must agree on every clip"
# The binary the tests built; its table and summary (accuracy, agreement, M4
# figures) go to the log, and it exits non-zero if host and device differ.
"${CARGO_TARGET_DIR:-target}/debug/kws_demo" | tail -4
