#!/usr/bin/env bash
# Runs every check and test of akida-rs (what CI runs after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n[test] %s\n' "$*"; }

step "format"
cargo fmt --all -- --check
(cd firmware && cargo fmt -- --check)

step "clippy (host workspace, all targets)"
cargo clippy --workspace --all-targets -- -D warnings

step "core builds for the Cortex-M4F target"
cargo build -q -p akida-core --target thumbv7em-none-eabihf

step "firmware builds (thumbv7em-none-eabihf) and lints clean"
(cd firmware && cargo clippy -q --release -- -D warnings && cargo build -q --release)

step "tests"
# BrainChip's engine, when scripts/setup.sh could install it, checks our .fbz files.
AKIDA_VENV="${AKIDA_VENV:-/tmp/akida-venv}"
if [ -z "${AKIDA_PYTHON:-}" ] && "$AKIDA_VENV/bin/python" -c 'import akida' >/dev/null 2>&1; then
  export AKIDA_PYTHON="$AKIDA_VENV/bin/python"
fi
cargo test --workspace
