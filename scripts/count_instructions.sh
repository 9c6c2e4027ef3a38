#!/usr/bin/env bash
# Instructions the Cortex-M4F firmware executes per inference, layer by layer
# and in total, under QEMU (mps2-an386):
#
#   scripts/count_instructions.sh MODEL.akd|fbz [INPUT.npy]
#
# The model is loaded at run time into the firmware (no rebuild per model)
# and run on INPUT (uint8, NHWC batch or one HWC image; one all-zero image
# without it). Instructions are counted by the QEMU TCG plugin
# scripts/qemu_icount.c (built with the C compiler on first use); where it
# cannot be built, by QEMU's `-singlestep -d exec` trace (slow, one log line
# per instruction). Both count guest instructions, not M4 cycles. The
# figures are deterministic: the kernels do not depend on the data.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 MODEL.akd|fbz [INPUT.npy]" >&2
  exit 2
fi
model=$1
input=()
if [ $# -eq 2 ]; then input=(-i "$2"); fi
cargo build -q --release -p akida-host --bin akida
akida=target/release/akida
if ! "$akida" flash -m "$model" --target qemu "${input[@]}" --count plugin; then
  echo "count_instructions: the TCG plugin did not work; counting with -singlestep -d exec" >&2
  "$akida" flash -m "$model" --target qemu "${input[@]}" --count trace
fi
