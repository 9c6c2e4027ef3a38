#!/usr/bin/env python3
"""Makes the int8 TFLite files of the two zoo architectures that
bench/throughput.sh compares against (run once; the .tflite files are
committed so that the bench needs no TensorFlow).

The float Keras models come from our own zoo (`akida_models create`, the
same architectures as BrainChip's akida_models: ds_cnn_kws, ds_cnn_cifar10,
random initial weights); TensorFlow's converter quantizes them to full int8
(weights and activations int8, uint8 input as our models take, int8 output)
with a representative data set of random uint8 images. Weights are random, so
only the speed of the files means anything, not their predictions.

    target/release/akida_models create -s /tmp/tfl/ds_cnn_kws.h5 ds_cnn_kws
    target/release/akida_models create -s /tmp/tfl/ds_cnn_cifar10.h5 ds_cnn_cifar10
    /work/bc-venv/bin/python bench/tflite/make_tflite.py /tmp/tfl

(/work/bc-venv: TensorFlow 2.19.1 and tf_keras 2.19.0.) Writes
bench/tflite/ds_cnn_kws_int8.tflite and bench/tflite/ds_cnn_cifar10_int8.tflite.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def convert(h5, out):
    model = tf_keras.models.load_model(h5)
    shape = model.input_shape[1:]
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(64):
            yield [rng.integers(0, 256, (1, *shape)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.int8
    data = converter.convert()
    with open(out, "wb") as f:
        f.write(data)
    print(f"{out}: {len(data)} bytes, input {shape}")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/tmp/tfl"
    for name in ("ds_cnn_kws", "ds_cnn_cifar10"):
        convert(os.path.join(src, f"{name}.h5"), os.path.join(HERE, f"{name}_int8.tflite"))


if __name__ == "__main__":
    main()
