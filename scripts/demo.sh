#!/usr/bin/env bash
# The main job of akida-rs: keyword spotting, spoken words in, the same answer
# from the host and from the Cortex-M4F firmware.
#  1. kws_demo: the 12-class ds_cnn_kws made with this tool chain
#     (models/ds_cnn_kws_12, docs/KWS.md) on 48 real Speech Commands clips of
#     the test split. The host computes the MFCC front end and runs the model;
#     the firmware, built with the model embedded, runs under QEMU (mps2-an386,
#     Cortex-M4F), receives the raw 16 kHz PCM, computes the same front end on
#     the M4 and runs the model. Host and device must agree on every clip
#     (features, potentials, labels); the M4's instructions per clip are counted.
#  2. the shipped model is what `cnn2snn convert` makes of the tuned Keras file.
#  3. bit-exact with BrainChip's engine: BrainChip's own quantized ds_cnn_kws
#     converted by our cnn2snn and run by our runtime gives the engine's outputs.
# (scripts/demo_cifar10.sh is the second example: the zoo, quantize, check,
# convert, .fbz, CIFAR-10 images, the firmware's loader.)
# Run ./scripts/setup.sh once first. Outputs go to target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
W=target/demo
rm -rf "$W" && mkdir -p "$W"

say "building (release)"
cargo build -q --release -p akida-host --bins
cargo build -q --release -p akida-tests --example demo_tools
BIN=target/release
TOOLS=target/release/examples/demo_tools
KWS=models/ds_cnn_kws_12

say "1. kws_demo: 48 Speech Commands clips on the host and on the Cortex-M4F firmware (QEMU)"
$BIN/kws_demo --json $W/kws_demo.json
echo "one JSON record per clip: $W/kws_demo.json"

say "2. the shipped model is cnn2snn's conversion of the tuned Keras model"
$BIN/cnn2snn -m $KWS/ds_cnn_kws_12_iq8_wq4_aq4.h5 convert -s $W/ds_cnn_kws_12_iq8_wq4_aq4.akd
cmp $W/ds_cnn_kws_12_iq8_wq4_aq4.akd $KWS/ds_cnn_kws_12_iq8_wq4_aq4.akd
echo "$W/ds_cnn_kws_12_iq8_wq4_aq4.akd == $KWS/ds_cnn_kws_12_iq8_wq4_aq4.akd: identical bytes"

say "3. bit-exact with BrainChip's engine (ds_cnn_kws quantized by BrainChip's cnn2snn)"
REF=tests/data/reference/vectors
M=ds_cnn_kws_iq8_wq4_aq4
$BIN/cnn2snn -m $REF/${M}_q.h5 convert -s $W/$M.akd
$TOOLS npz-extract $REF/$M.npz input_uint8 $W/kws_inputs.npy
$TOOLS npz-extract $REF/$M.npz akida_forward $W/kws_engine_forward.npy
$BIN/akida run -m $W/$M.akd -i $W/kws_inputs.npy -o $W/kws_forward.npy
$TOOLS compare $W/kws_forward.npy $W/kws_engine_forward.npy

say "done: outputs in $W/"
