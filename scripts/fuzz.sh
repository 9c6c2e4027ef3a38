#!/usr/bin/env bash
# Fuzzes every parser of a user's file (see tests/src/fuzz.rs):
#   scripts/fuzz.sh SECONDS [TARGET...]     (targets: akd fbz model_config h5 npy npz cifar10 wav)
# Each target runs SECONDS on mutants of its corpus (tests/data/fuzz/TARGET/)
# under a 4 GiB memory limit; a panic is saved to target/fuzz/crashes/, an
# input that aborted the process (allocation failure) or hung (10 s) is kept
# from target/fuzz/current-TARGET. Summary lines (JSON) go to
# target/fuzz/summary.jsonl. A finding, once fixed, is copied into the
# target's corpus folder, which CI replays (cargo test --test fuzz).
# Stable Rust: a mutation fuzzer of our own, no cargo-fuzz (needs nightly).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(akd fbz model_config h5 npy npz cifar10 wav)
seed="${FUZZ_SEED:-$(date +%s)}"
out="${FUZZ_OUT:-target/fuzz}"
mkdir -p "$out"
tmp=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
# HDF5 can loop on a damaged file: give up a read after 5 s (see keras::h5).
export AKIDA_H5_TIMEOUT="${AKIDA_H5_TIMEOUT:-5}"

# The test profile, as CI builds it: no second build.
cargo test -q -p akida-tests --test fuzz --no-run
bin=$(cargo test -q -p akida-tests --test fuzz --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*fuzz-[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "fuzz: cannot find the fuzz test binary" >&2; exit 2; }

status=0
for t in "${targets[@]}"; do
  echo "[fuzz] $t for $seconds s (seed $seed)"
  set +e
  (ulimit -v $((4 * 1024 * 1024)); "$bin" --fuzz "$t" "$seconds" --seed "$seed" --out "$out" --tmp "$tmp") |
    tee -a "$out/summary.jsonl"
  rc=${PIPESTATUS[0]}
  set -e
  case $rc in
    0) ;;
    1) echo "[fuzz] $t: crashes saved in $out/crashes/"; status=1 ;;
    3) mkdir -p "$out/hangs"
       cp "$out/current-$t" "$out/hangs/$t-seed$seed"
       echo "[fuzz] $t: a hang, kept in $out/hangs/$t-seed$seed"; status=1 ;;
    *) mkdir -p "$out/crashes"
       cp "$out/current-$t" "$out/crashes/$t-abort-seed$seed"
       echo "[fuzz] $t: the process ended with status $rc; its input is $out/crashes/$t-abort-seed$seed"
       status=1 ;;
  esac
done
exit $status
