#!/usr/bin/env bash
# Throughput of `akida run` (akida-rs, all cores) against BrainChip's own
# engine (akida 2.19.3, `akida.Model(path).forward(x)`) on the same images
# and the same .fbz model, in one run.
#
# What it does:
#   1. builds `akida` in release (target dir: $CARGO_TARGET_DIR or target/);
#   2. writes IMAGES (default 1000) random uint8 images shaped like the model
#      input to a .npy (pseudo-random, fixed seed, no Python needed);
#   3. times `akida run -m MODEL -i x.npy -o y.npy` as a whole process (start,
#      model load, .npy read and write included), best of 3 after a warm-up,
#      with hyperfine if installed, else `date +%s.%N`; also prints the batch
#      inference rate `akida run` reports itself;
#   4. if Python with akida==2.19.3 is available (the venv /tmp/akida-venv;
#      created with `pip install akida==2.19.3` when missing; skipped with a
#      message if that fails), loads ENGINE_MODEL in BrainChip's engine, times
#      `model.forward(x)` on the same images (best of 3 after a warm-up, model
#      load excluded), checks its output equals ours, and prints images/s of
#      both engines and their ratio.
#
# Usage:
#   bench/throughput.sh [MODEL.akd|MODEL.fbz [ENGINE_MODEL.fbz]]
#     MODEL         the model akida-rs runs
#                   (default tests/data/reference/vectors/ds_cnn_kws_iq8_wq4_aq4.fbz)
#     ENGINE_MODEL  the .fbz BrainChip's engine runs (default: MODEL if it is
#                   a .fbz, else MODEL converted with `akida convert-format`)
#   IMAGES=5000 bench/throughput.sh      # another batch size
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODEL="${1:-$ROOT/tests/data/reference/vectors/ds_cnn_kws_iq8_wq4_aq4.fbz}"
ENGINE_MODEL="${2:-}"
IMAGES="${IMAGES:-1000}"
VENV=/tmp/akida-venv
RUNS=3

[[ -f "$MODEL" ]] || { echo "error: $MODEL: no such model file" >&2; exit 2; }

say() { printf '[bench] %s\n' "$*" >&2; }

WORK="$(mktemp -d /tmp/akida-throughput.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

say "building akida (release)"
(cd "$ROOT" && cargo build -q --release -p akida-host --bin akida)
AKIDA="${CARGO_TARGET_DIR:-$ROOT/target}/release/akida"

# The model input, `HxWxC`, from the summary's `Input:` line.
SHAPE="$("$AKIDA" summary -m "$MODEL" | sed -n 's/^Input: \([0-9x]*\) .*/\1/p')"
IFS=x read -r H W C <<<"$SHAPE"
[[ -n "${C:-}" ]] || { echo "error: cannot read the input shape of $MODEL" >&2; exit 2; }

# Writes $IMAGES random uint8 images of HxWxC as a version 1.0 .npy file.
write_images() {
    local out="$1" bytes=$((IMAGES * H * W * C))
    local dict="{'descr': '|u1', 'fortran_order': False, 'shape': ($IMAGES, $H, $W, $C), }"
    # magic (6) + version (2) + length (2) + dict + padding + newline: a multiple of 64.
    local len=$(((10 + ${#dict} + 1 + 63) / 64 * 64 - 10))
    {
        printf '\x93NUMPY\x01\x00'
        printf "\\x$(printf %02x $((len % 256)))\\x$(printf %02x $((len / 256)))"
        printf '%-*s\n' $((len - 1)) "$dict"
        if command -v openssl >/dev/null; then
            # Process substitution: openssl's SIGPIPE must not fail the script.
            head -c "$bytes" < <(openssl enc -aes-128-ctr -nosalt -pbkdf2 \
                -pass pass:akida-bench </dev/zero 2>/dev/null)
        else
            head -c "$bytes" /dev/urandom
        fi
    } >"$out"
}

X="$WORK/x.npy"
write_images "$X"
say "model $MODEL, input ${H}x${W}x${C}, $IMAGES random uint8 images"

# Prints the best wall time in seconds of $RUNS runs of `akida run`.
time_akida_run() {
    local cmd=("$AKIDA" run -m "$MODEL" -i "$X" -o "$WORK/ours.npy")
    if command -v hyperfine >/dev/null; then
        hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$WORK/h.json" \
            "${cmd[*]}" >/dev/null 2>&1
        sed -n 's/.*"min": *\([0-9.e-]*\).*/\1/p' "$WORK/h.json" | head -1
        return
    fi
    "${cmd[@]}" >/dev/null
    local best="" start end t
    for _ in $(seq "$RUNS"); do
        start=$(date +%s.%N)
        "${cmd[@]}" >"$WORK/report.txt"
        end=$(date +%s.%N)
        best=$(awk -v s="$start" -v e="$end" -v b="$best" \
            'BEGIN { t = e - s; print (b == "" || t < b) ? t : b }')
    done
    echo "$best"
}

# Prints the best batch inference rate `akida run` reports in $RUNS runs,
# then the report line of that run.
best_report() {
    local line rate best="" best_line=""
    for _ in $(seq "$RUNS"); do
        line="$("$AKIDA" run -m "$MODEL" -i "$X" -o "$WORK/ours.npy")"
        rate="$(sed -n 's/.* \([0-9]*\) images\/s.*/\1/p' <<<"$line")"
        if [[ -z "$best" ]] || ((rate > best)); then best=$rate best_line=$line; fi
    done
    printf '%s\n%s\n' "$best" "$best_line"
}

# Floating-point arithmetic: calc EXPR (awk, as bc is not everywhere).
calc() { awk "BEGIN { print $1 }"; }

OURS_S="$(time_akida_run)"
OURS_IPS=$(calc "$IMAGES / $OURS_S")
{ read -r INNER_IPS; read -r REPORT; } < <(best_report)
printf 'akida-rs  akida run (whole process, best of %d): %8.0f images/s  (%.4f s)\n' \
    "$RUNS" "$OURS_IPS" "$OURS_S"
printf 'akida-rs  batch inference (akida run report, best of %d): %8.0f images/s  [%s]\n' \
    "$RUNS" "$INNER_IPS" "$REPORT"

# BrainChip's engine, when it can be had.
engine_python() {
    local py="$VENV/bin/python"
    if [[ -x "$py" ]] && "$py" -c 'import akida, sys; sys.exit(akida.__version__ != "2.19.3")' 2>/dev/null; then
        echo "$py"
        return
    fi
    say "installing akida==2.19.3 into $VENV"
    if python3 -m venv "$VENV" >&2 && "$VENV/bin/pip" install -q akida==2.19.3 >&2; then
        echo "$py"
    fi
}

PY="$(engine_python || true)"
if [[ -z "$PY" ]]; then
    echo "BrainChip akida engine: skipped (cannot install akida==2.19.3 into $VENV)"
    exit 0
fi

if [[ -z "$ENGINE_MODEL" ]]; then
    if [[ "${MODEL,,}" == *.fbz ]]; then
        ENGINE_MODEL="$MODEL"
    else
        ENGINE_MODEL="$WORK/engine.fbz"
        "$AKIDA" convert-format "$MODEL" "$ENGINE_MODEL" >/dev/null
    fi
fi

THEIRS_IPS="$("$PY" - "$ENGINE_MODEL" "$X" "$WORK/ours.npy" "$RUNS" <<'EOF'
import sys, time
import numpy as np
import akida

path, x_path, ours_path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.load(x_path)
model = akida.Model(path)
out = model.forward(x)  # warm-up
best = min(
    (lambda t0: (model.forward(x), time.perf_counter() - t0)[1])(time.perf_counter())
    for _ in range(runs)
)
ours = np.load(ours_path)
same = ours.shape == out.shape and ours.dtype == out.dtype and np.array_equal(ours, out)
print(f"{len(x) / best:.0f} {best:.4f} {'identical' if same else 'DIFFERENT'}")
EOF
)"
read -r THEIRS_IPS THEIRS_S SAME <<<"$THEIRS_IPS"
printf 'BrainChip akida %s forward (best of %d):     %8.0f images/s  (%.4f s)\n' \
    "2.19.3" "$RUNS" "$THEIRS_IPS" "$THEIRS_S"
printf 'outputs of both engines: %s\n' "$SAME"
printf 'ratio akida-rs / akida engine: %.2fx (whole process), %.2fx (inference only)\n' \
    "$(calc "$OURS_IPS / $THEIRS_IPS")" "$(calc "$INNER_IPS / $THEIRS_IPS")"
