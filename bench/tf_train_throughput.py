#!/usr/bin/env python3
"""Training throughput of a Keras .h5 model under TensorFlow / tf_keras on
random data, for bench/train_throughput.sh: the same architecture file our
trainer reads, Adam (epsilon 1e-7), categorical cross-entropy (from logits,
or on the softmax output when the model ends with one), batch BATCH.

Usage: tf_train_throughput.py MODEL.h5 [BATCH [STEPS [WARMUP]]]
Prints `images/s N`.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402


def main():
    path = sys.argv[1]
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    model = keras.models.load_model(path, compile=False)
    softmax = model.layers[-1].__class__.__name__ == "Activation" and \
        model.layers[-1].get_config().get("activation") == "softmax"
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-7),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=not softmax),
                  metrics=["accuracy"])
    rng = np.random.default_rng(1)
    shape = (batch,) + tuple(model.input_shape[1:])
    x = rng.integers(0, 256, size=shape).astype(np.float32)
    classes = model.output_shape[-1]
    y = keras.utils.to_categorical(rng.integers(0, classes, size=batch), classes)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"images/s {steps * batch / seconds:.1f} ({steps} steps of {batch} in {seconds:.2f} s, "
          f"tensorflow {tf.__version__}, {threads} threads)")


if __name__ == "__main__":
    main()
