#!/usr/bin/env bash
# Training throughput (images/s, batch 100) of akida-rs's trainer (burn
# `flex` with our kernels) against TensorFlow / tf_keras on the CPU, on the
# same architectures (ds_cnn_kws and ds_cnn_cifar10 as `akida_models create`
# writes them), measured one after the other in the same run, with the CPU
# named.
#
# What it does:
#   1. builds `akida_models` and the trainer's `train_throughput` example in
#      release;
#   2. creates both zoo models as .h5 files;
#   3. times our training step (forward, loss, backward, Adam) on random
#      data: WARMUP steps, then STEPS timed;
#   4. times tf_keras `train_on_batch` on the same .h5 files and random data
#      (bench/tf_train_throughput.py), with /work/bc-venv/bin/python when
#      present, else $TF_PYTHON, else a venv /tmp/tf-venv created with
#      `pip install tensorflow-cpu==2.19.1 tf_keras==2.19.0` (skipped with a
#      message if that fails);
#   5. prints both rates and their ratio per model.
#
# Usage: bench/train_throughput.sh        (STEPS=10 WARMUP=2 BATCH=100 by default)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${STEPS:-10}"
WARMUP="${WARMUP:-2}"
BATCH="${BATCH:-100}"
say() { printf '[bench] %s\n' "$*" >&2; }

WORK="$(mktemp -d /tmp/akida-train-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# BIN: a folder already holding akida_models and examples/train_throughput
# (for example target/debug after `cargo test --workspace --no-run`, whose
# test profile is opt-level 2); without it, both are built in release.
if [[ -n "${BIN:-}" ]]; then
    TARGET="$BIN"
else
    say "building akida_models and train_throughput (release)"
    (cd "$ROOT" && cargo build -q --release -p akida-host --bin akida_models \
        && cargo build -q --release -p akida-train --example train_throughput)
    TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
fi

PYTHON=""
if [[ -x /work/bc-venv/bin/python ]]; then
    PYTHON=/work/bc-venv/bin/python
elif [[ -n "${TF_PYTHON:-}" ]]; then
    PYTHON="$TF_PYTHON"
else
    if [[ ! -x /tmp/tf-venv/bin/python ]]; then
        say "creating /tmp/tf-venv (tensorflow-cpu 2.19.1, tf_keras 2.19.0)"
        python3 -m venv /tmp/tf-venv \
            && /tmp/tf-venv/bin/pip -q install tensorflow-cpu==2.19.1 tf_keras==2.19.0 \
            || say "could not install TensorFlow: only our figures follow"
    fi
    [[ -x /tmp/tf-venv/bin/python ]] && PYTHON=/tmp/tf-venv/bin/python
fi

CPU="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
FLAGS="$(grep -m1 -o -w -E 'avx512f|avx512_vnni|amx_tile|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
say "CPU: $CPU, $(nproc) cores, SIMD: $FLAGS"

printf '%-16s %14s %14s %8s\n' model "akida-rs img/s" "tf_keras img/s" ratio
for model in ds_cnn_kws ds_cnn_cifar10; do
    "$TARGET/akida_models" create -s "$WORK/$model.h5" "$model" >/dev/null
    ours="$("$TARGET/examples/train_throughput" "$WORK/$model.h5" "$BATCH" "$STEPS" "$WARMUP" \
        | sed -n 's/^images\/s \([0-9.]*\).*/\1/p')"
    theirs="-"
    ratio="-"
    if [[ -n "$PYTHON" ]]; then
        theirs="$("$PYTHON" "$ROOT/bench/tf_train_throughput.py" "$WORK/$model.h5" "$BATCH" "$STEPS" "$WARMUP" \
            | sed -n 's/^images\/s \([0-9.]*\).*/\1/p')"
        ratio="$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')"
    fi
    printf '%-16s %14s %14s %8s\n' "$model" "$ours" "$theirs" "$ratio"
done
