#!/usr/bin/env bash
# The second example of akida-rs (the main job is scripts/demo.sh, keyword
# spotting), end to end on the built-in small datasets:
#  1. the model zoo: create ds_cnn_cifar10 (Keras .h5)
#  2. cnn2snn: quantize it at 4/4/4 bits, check it, convert it (.akd and BrainChip's .fbz)
#  3. akida: summary, then inference on the 500 real CIFAR-10 test images of the mini set
#  4. parity with BrainChip's engine: convert BrainChip's own quantized ds_cnn_kws
#     (tests/data/reference) with our cnn2snn, run it, compare with the engine's outputs
#  5. the same model on the Cortex-M4F firmware under QEMU (akida flash): identical
#     integers, with the firmware's memory and instruction figures
# (The zoo model is untrained here: training arrives with the training tools.)
# Run ./scripts/setup.sh once first. Outputs go to target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
W=target/demo_cifar10
rm -rf "$W" && mkdir -p "$W"

say "building (release)"
cargo build -q --release -p akida-host --bins
cargo build -q --release -p akida-tests --example demo_tools
BIN=target/release
TOOLS=target/release/examples/demo_tools
REF=tests/data/reference/vectors
DATA=tests/data/datasets/cifar10-mini/cifar-10-batches-bin

say "1. akida_models create ds_cnn_cifar10"
$BIN/akida_models create -s $W/ds_cnn_cifar10.h5 ds_cnn_cifar10
$BIN/akida_models summary -m $W/ds_cnn_cifar10.h5 | tail -5

say "2. cnn2snn quantize / check / convert"
$BIN/cnn2snn -m $W/ds_cnn_cifar10.h5 quantize -wq 4 -aq 4
$BIN/cnn2snn -m $W/ds_cnn_cifar10_iq4_wq4_aq4.h5 check
$BIN/cnn2snn -m $W/ds_cnn_cifar10_iq4_wq4_aq4.h5 convert
$BIN/cnn2snn -m $W/ds_cnn_cifar10_iq4_wq4_aq4.h5 convert -s $W/ds_cnn_cifar10_iq4_wq4_aq4.fbz

say "3. akida summary / run on the CIFAR-10 mini test batch"
$BIN/akida summary -m $W/ds_cnn_cifar10_iq4_wq4_aq4.akd
$TOOLS cifar10-npy $DATA/test_batch.bin $W/cifar10_test.npy
$BIN/akida run -m $W/ds_cnn_cifar10_iq4_wq4_aq4.akd -i $W/cifar10_test.npy -o $W/predict.npy --predict
$BIN/akida run -m $W/ds_cnn_cifar10_iq4_wq4_aq4.fbz -i $W/cifar10_test.npy -o $W/predict_fbz.npy --predict
$TOOLS compare $W/predict_fbz.npy $W/predict.npy
echo "top-1 class per image (untrained weights):"
$TOOLS top1 $W/predict.npy $(cat $DATA/batches.meta.txt)

say "4. bit-exact with BrainChip's engine (ds_cnn_kws quantized by BrainChip's cnn2snn)"
M=ds_cnn_kws_iq8_wq4_aq4
$BIN/cnn2snn -m $REF/${M}_q.h5 convert -s $W/$M.akd
$TOOLS npz-extract $REF/$M.npz input_uint8 $W/kws_inputs.npy
$TOOLS npz-extract $REF/$M.npz akida_forward $W/kws_engine_forward.npy
$TOOLS npz-extract $REF/$M.npz akida_predict $W/kws_engine_predict.npy
$BIN/akida run -m $W/$M.akd -i $W/kws_inputs.npy -o $W/kws_forward.npy
$BIN/akida run -m $W/$M.akd -i $W/kws_inputs.npy -o $W/kws_predict.npy --predict
$TOOLS compare $W/kws_forward.npy $W/kws_engine_forward.npy
$TOOLS compare $W/kws_predict.npy $W/kws_engine_predict.npy

say "5. the same model on the Cortex-M4F firmware under QEMU (mps2-an386), loaded at run time"
$BIN/akida flash -m $W/$M.akd --target qemu -i $W/kws_inputs.npy -o $W/kws_firmware.npy
$TOOLS compare $W/kws_firmware.npy $W/kws_engine_forward.npy

say "done: outputs in $W/"
