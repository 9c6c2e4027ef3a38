#!/usr/bin/env bash
# The documented flow on real data: ds_cnn_kws with 12 classes on the
# 4,890-clip Speech Commands set (speaker-disjoint split, see
# tests/data/datasets/README.md), from the zoo to a converted model:
# create, train (float), quantize 8/4/4, tune, convert, evaluate each step.
# docs/TRAINING.md records a run of it. The shipped tuned model
# (models/ds_cnn_kws_12) was retuned afterwards as a training run with a
# decaying rate, chosen among six runs on validation accuracy (TRAINING.md,
# "Decaying rate, no early stopping"):
#   kws_train train -m Q.h5 -e 30 --lr 1e-3 ...; cnn2snn -m Q.h5 align
#
# Usage: scripts/train_kws_12.sh DATA_DIR OUT_DIR [TRAIN_EPOCHS [TUNE_EPOCHS]]
# BIN (default target/release) holds akida_models, cnn2snn, kws_train.
set -euo pipefail
DATA="${1:?usage: train_kws_12.sh DATA_DIR OUT_DIR [TRAIN_EPOCHS [TUNE_EPOCHS]]}"
OUT="${2:?usage: train_kws_12.sh DATA_DIR OUT_DIR [TRAIN_EPOCHS [TUNE_EPOCHS]]}"
EPOCHS="${3:-30}"
TUNE="${4:-10}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release}"
mkdir -p "$OUT"
run() { printf '\n$ %s\n' "$*"; "$@"; }
K=(--data-dir "$DATA" --classes 12 --no-progress)

run "$BIN/akida_models" create -s "$OUT/ds_cnn_kws_12.h5" ds_cnn_kws --classes 12
run "$BIN/kws_train" train -m "$OUT/ds_cnn_kws_12.h5" -e "$EPOCHS" "${K[@]}"
run "$BIN/kws_train" eval -m "$OUT/ds_cnn_kws_12.h5" "${K[@]}"
run "$BIN/cnn2snn" -m "$OUT/ds_cnn_kws_12.h5" quantize -iq 8 -wq 4 -aq 4
Q="$OUT/ds_cnn_kws_12_iq8_wq4_aq4.h5"
run "$BIN/kws_train" eval -m "$Q" -ak "${K[@]}"
run "$BIN/kws_train" tune -m "$Q" -e "$TUNE" "${K[@]}"
run "$BIN/kws_train" eval -m "$Q" -ak "${K[@]}"
run "$BIN/cnn2snn" -m "$Q" convert
run "$BIN/cnn2snn" -m "$Q" convert -s "$OUT/ds_cnn_kws_12_iq8_wq4_aq4.fbz"
run "$BIN/kws_train" eval -m "$Q" --akd "$OUT/ds_cnn_kws_12_iq8_wq4_aq4.akd" "${K[@]}"
ls -l "$OUT"
