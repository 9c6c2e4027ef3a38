#!/usr/bin/env bash
# The documented flow on real data: vgg_utk_face on the UTKFace crops
# (32x32, age regression; tests/data/datasets/README.md says how to build
# the set), from the zoo to a converted model: create, train (float),
# quantize 4/4/4, tune, convert, evaluate each step (mean absolute error of
# the age in years; akida_models reports 6.18 after its full recipe).
# docs/TRAINING.md records a run of it.
#
# Usage: scripts/train_utk_face.sh DATA_DIR OUT_DIR [TRAIN_EPOCHS [TUNE_EPOCHS]]
# BIN (default target/release) holds akida_models, cnn2snn, utk_face_train.
set -euo pipefail
DATA="${1:?usage: train_utk_face.sh DATA_DIR OUT_DIR [TRAIN_EPOCHS [TUNE_EPOCHS]]}"
OUT="${2:?usage: train_utk_face.sh DATA_DIR OUT_DIR [TRAIN_EPOCHS [TUNE_EPOCHS]]}"
EPOCHS="${3:-60}"
TUNE="${4:-20}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
mkdir -p "$OUT"
run() { printf '\n$ %s\n' "$*"; "$@"; }
U=(--data-dir "$DATA" --no-progress)

run "$BIN/akida_models" create -s "$OUT/vgg_utk_face.h5" vgg_utk_face
run "$BIN/utk_face_train" train -m "$OUT/vgg_utk_face.h5" -e "$EPOCHS" "${U[@]}"
run "$BIN/utk_face_train" eval -m "$OUT/vgg_utk_face.h5" "${U[@]}"
run "$BIN/cnn2snn" -m "$OUT/vgg_utk_face.h5" quantize -iq 4 -wq 4 -aq 4
Q="$OUT/vgg_utk_face_iq4_wq4_aq4.h5"
run "$BIN/utk_face_train" eval -m "$Q" -ak "${U[@]}"
run "$BIN/utk_face_train" tune -m "$Q" -e "$TUNE" "${U[@]}"
run "$BIN/utk_face_train" eval -m "$Q" -ak "${U[@]}"
run "$BIN/cnn2snn" -m "$Q" convert
run "$BIN/utk_face_train" eval -m "$Q" --akd "$OUT/vgg_utk_face_iq4_wq4_aq4.akd" "${U[@]}"
ls -l "$OUT"
