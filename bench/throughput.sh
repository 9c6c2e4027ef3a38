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
#      both engines and their ratio;
#   5. if the model input is that of one of the int8 TFLite files in
#      bench/tflite (ds_cnn_kws 49x10x1, ds_cnn_cifar10 32x32x3: the same
#      architectures, see bench/tflite/make_tflite.py) and the ai-edge-litert
#      interpreter is available (venv /tmp/litert-venv, created with
#      `pip install ai-edge-litert` when missing), times it on the same
#      images, XNNPACK, 2 threads: batch 1 (one `invoke` per image) and the
#      whole batch in one `invoke`, best of 3 after a warm-up;
#   6. `akida run --layers` on the first LAYER_IMAGES (default 200) images:
#      the per-layer time and G MAC/s, and the single-image latency (p50,
#      p99) on one thread and with each image's large layers in bands over
#      every core, whose p50s give our batch-1 rates;
#   7. with a C compiler on an AVX2 CPU, the register-only G MAC/s of one
#      core for the AVX2 products' instruction pairs (bench/peak_avx2.c),
#      and on an AVX-512 VNNI CPU for vpdpbusd and vpdpwssd on zmm
#      (bench/peak_avx512.c), and on an AMX-INT8 CPU for tdpbusd on tiles
#      (bench/peak_amx.c).
#
# Usage:
#   bench/throughput.sh [MODEL.akd|MODEL.fbz [ENGINE_MODEL.fbz]]
#     MODEL         the model akida-rs runs
#                   (default tests/data/reference/vectors/ds_cnn_kws_iq8_wq4_aq4.fbz)
#     ENGINE_MODEL  the .fbz BrainChip's engine runs (default: MODEL if it is
#                   a .fbz, else MODEL converted with `akida convert-format`)
#   IMAGES=5000 bench/throughput.sh      # another batch size
#   SIMD=avx2 bench/throughput.sh        # our runs on one instruction set
#                                        # (`akida run --simd`; default: the best)
#   CPU_AS=avx2 bench/throughput.sh      # every program as on a CPU without
#                                        # AVX-512 and AMX (an AVX2 CPU such as
#                                        # AMD Zen 2); CPU_AS=avx512: without AMX
#
# CPU_AS hides instruction sets from CPUID for all three programs (ours,
# the engine, TFLite), through bench/cpuid_mask.c (LD_PRELOAD, Linux CPUID
# faulting: needs the `cpuid_fault` CPU flag and a C compiler), so each
# picks the kernels it would pick on such a CPU: a like-for-like comparison
# per instruction set on one machine. (`SIMD=` alone forces only our
# kernels: TFLite's XNNPACK keeps its AMX kernels where the CPU has tiles.)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODEL="${1:-$ROOT/tests/data/reference/vectors/ds_cnn_kws_iq8_wq4_aq4.fbz}"
ENGINE_MODEL="${2:-}"
IMAGES="${IMAGES:-1000}"
VENV=/tmp/akida-venv
LITERT_VENV=/tmp/litert-venv
LAYER_IMAGES="${LAYER_IMAGES:-200}"
SIMD="${SIMD:-}"
CPU_AS="${CPU_AS:-}"
RUNS=3
# `akida run` options of every run of ours.
OURS=()
[[ -n "$SIMD" ]] && OURS=(--simd "$SIMD")

[[ -f "$MODEL" ]] || { echo "error: $MODEL: no such model file" >&2; exit 2; }

say() { printf '[bench] %s\n' "$*" >&2; }

WORK="$(mktemp -d /tmp/akida-throughput.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# The prefix of every timed program: empty, or the CPUID mask of CPU_AS.
MASK=()
case "$CPU_AS" in
    "") ;;
    avx2 | avx512)
        grep -qw cpuid_fault /proc/cpuinfo \
            || { echo "error: CPU_AS needs CPUID faulting (CPU flag cpuid_fault)" >&2; exit 2; }
        cc -O2 -shared -fPIC -o "$WORK/cpuid_mask.so" "$ROOT/bench/cpuid_mask.c" \
            || { echo "error: CPU_AS: cannot build bench/cpuid_mask.c" >&2; exit 2; }
        MASK=(env "CPUID_MASK=$CPU_AS" "LD_PRELOAD=$WORK/cpuid_mask.so")
        ;;
    *) echo "error: CPU_AS=$CPU_AS: expected avx2 or avx512" >&2; exit 2 ;;
esac

# Whether the CPU, as CPU_AS presents it, has instruction set flag $1.
has_flag() {
    case "$CPU_AS:$1" in
        avx2:avx512* | avx2:amx* | avx2:avx_vnni | avx512:amx*) return 1 ;;
    esac
    grep -qw "$1" /proc/cpuinfo
}

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
    local cmd=("${MASK[@]}" "$AKIDA" run -m "$MODEL" -i "$X" -o "$WORK/ours.npy" "${OURS[@]}")
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
        line="$("${MASK[@]}" "$AKIDA" run -m "$MODEL" -i "$X" -o "$WORK/ours.npy" "${OURS[@]}")"
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

THEIRS_IPS=0
engine() {
    local py
    py="$(engine_python || true)"
    if [[ -z "$py" ]]; then
        echo "BrainChip akida engine: skipped (cannot install akida==2.19.3 into $VENV)"
        return
    fi
    if [[ -z "$ENGINE_MODEL" ]]; then
        if [[ "${MODEL,,}" == *.fbz ]]; then
            ENGINE_MODEL="$MODEL"
        else
            ENGINE_MODEL="$WORK/engine.fbz"
            "$AKIDA" convert-format "$MODEL" "$ENGINE_MODEL" >/dev/null
        fi
    fi
    local line theirs_s same
    line="$("${MASK[@]}" "$py" - "$ENGINE_MODEL" "$X" "$WORK/ours.npy" "$RUNS" <<'EOF'
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
    read -r THEIRS_IPS theirs_s same <<<"$line"
    printf 'BrainChip akida %s forward (best of %d):     %8.0f images/s  (%.4f s)\n' \
        "2.19.3" "$RUNS" "$THEIRS_IPS" "$theirs_s"
    printf 'outputs of both engines: %s\n' "$same"
    printf 'ratio akida-rs / akida engine: %.2fx (whole process), %.2fx (inference only)\n' \
        "$(calc "$OURS_IPS / $THEIRS_IPS")" "$(calc "$INNER_IPS / $THEIRS_IPS")"
}

# Our single-image latency and per-layer profile (`akida run --layers`).
profile() {
    local n=$((IMAGES < LAYER_IMAGES ? IMAGES : LAYER_IMAGES)) save=$IMAGES report p50
    IMAGES=$n
    write_images "$WORK/x1.npy"
    IMAGES=$save
    report="$("${MASK[@]}" "$AKIDA" run -m "$MODEL" -i "$WORK/x1.npy" -o "$WORK/ours1.npy" --layers "${OURS[@]}")"
    printf 'akida run --layers on %d of the images:\n%s\n' "$n" "$(tail -n +2 <<<"$report")"
    p50="$(grep 'one thread)' <<<"$report" | sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p')"
    printf 'akida-rs  batch 1 (1 / p50 latency, one thread):  %8.0f images/s\n' "$(calc "1e6 / $p50")"
    # Each image's large layers in bands of output rows over every core.
    p50="$(grep 'in bands' <<<"$report" | sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p')"
    if [[ -n "$p50" ]]; then
        printf 'akida-rs  batch 1 (1 / p50 latency, bands over all cores):  %8.0f images/s\n' \
            "$(calc "1e6 / $p50")"
    fi
}

# TFLite int8 (ai-edge-litert, XNNPACK, 2 threads) on the same images.
litert_python() {
    local py="$LITERT_VENV/bin/python"
    if [[ -x "$py" ]] && "$py" -c 'import ai_edge_litert' 2>/dev/null; then
        echo "$py"
        return
    fi
    say "installing ai-edge-litert into $LITERT_VENV"
    if python3 -m venv "$LITERT_VENV" >&2 && "$LITERT_VENV/bin/pip" install -q ai-edge-litert numpy >&2; then
        echo "$py"
    fi
}

tflite() {
    local file py
    case "$SHAPE" in
        49x10x1) file="$ROOT/bench/tflite/ds_cnn_kws_int8.tflite" ;;
        32x32x3) file="$ROOT/bench/tflite/ds_cnn_cifar10_int8.tflite" ;;
        *)
            echo "TFLite int8: skipped (no .tflite for input $SHAPE)"
            return
            ;;
    esac
    py="$(litert_python || true)"
    if [[ -z "$py" ]]; then
        echo "TFLite int8: skipped (cannot install ai-edge-litert into $LITERT_VENV)"
        return
    fi
    "${MASK[@]}" "$py" - "$file" "$X" "$RUNS" "$THEIRS_IPS" "$INNER_IPS" 2>/dev/null <<'EOF'
import sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter

path, x_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine, ours = float(sys.argv[4]), float(sys.argv[5])
x = np.load(x_path)
n = len(x)


def timed(f):
    f()  # warm-up
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


one = Interpreter(model_path=path, num_threads=2)
one.allocate_tensors()
i1, o1 = one.get_input_details()[0]["index"], one.get_output_details()[0]["index"]


def batch1():
    for img in x:
        one.set_tensor(i1, img[None])
        one.invoke()
        one.get_tensor(o1)


batch = Interpreter(model_path=path, num_threads=2)
ib = batch.get_input_details()[0]["index"]
batch.resize_tensor_input(ib, list(x.shape))
batch.allocate_tensors()
ob = batch.get_output_details()[0]["index"]


def whole():
    batch.set_tensor(ib, x)
    batch.invoke()
    batch.get_tensor(ob)


t1, tb = timed(batch1), timed(whole)
name = path.rsplit("/", 1)[-1]
print(f"TFLite int8 {name} (ai-edge-litert, XNNPACK, 2 threads, best of {runs}):")
print(f"  batch 1:    {n / t1:8.0f} images/s  ({t1:.4f} s)")
print(f"  batch {n}: {n / tb:8.0f} images/s  ({tb:.4f} s)")
best = max(n / t1, n / tb)
print(f"ratio akida-rs (batch inference) / TFLite int8 (its best): {ours / best:.2f}x")
if engine > 0:
    print(f"ratio TFLite int8 (its best) / akida engine: {best / engine:.2f}x")
EOF
}

# The register-only peak of one core for the AVX2 products' instruction pairs.
peak() {
    if ! command -v cc >/dev/null || ! has_flag avx2; then
        return
    fi
    if cc -O2 -mavx2 -o "$WORK/peak" "$ROOT/bench/peak_avx2.c" 2>/dev/null; then
        printf 'peak (bench/peak_avx2.c, register-only loop), %s\n' "$("$WORK/peak")"
    fi
    # And of the AVX-512 VNNI products where the CPU has them (what the
    # avx512-vnni kernels run).
    if has_flag avx512_vnni \
        && cc -O2 -mavx512f -mavx512bw -mavx512vnni -o "$WORK/peak512" \
            "$ROOT/bench/peak_avx512.c" 2>/dev/null; then
        printf 'peak (bench/peak_avx512.c, register-only loop), %s\n' "$("$WORK/peak512")"
    fi
    # And of AMX-INT8 tiles where the CPU has them (what the amx kernels run
    # from 128 channels and filters).
    if has_flag amx_int8 \
        && cc -O2 -mamx-tile -mamx-int8 -o "$WORK/peakamx" "$ROOT/bench/peak_amx.c" 2>/dev/null; then
        printf 'peak (bench/peak_amx.c, register-only loop), %s\n' "$("$WORK/peakamx")"
    fi
}

printf 'CPU: %s, %s cores (nproc), load average %s\n' \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n "$CPU_AS" ]]; then
    printf 'CPU_AS=%s: every program (ours, the engine, TFLite) ran with %s hidden from CPUID\n' \
        "$CPU_AS" "$([[ $CPU_AS == avx2 ]] && echo 'AVX-512, AVX-VNNI and AMX' || echo 'AMX')"
fi
engine
tflite
profile
peak
