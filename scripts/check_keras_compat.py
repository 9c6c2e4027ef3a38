#!/usr/bin/env python3
"""Checks by hand (not in CI) that Keras .h5 files written by akida-rs load
with BrainChip's own Python stack:

* float models with ``tf_keras.models.load_model``,
* cnn2snn quantized models with ``cnn2snn.load_quantized_model``,

and that the loaded weights equal the datasets in the file bit for bit. For
our rewrite of each reference file (``tests/data/reference/vectors``), the
loaded model must also predict exactly what the original file predicts.

Setup (once; PyPI must be reachable):

    python3 -m venv /tmp/kerasvenv
    /tmp/kerasvenv/bin/pip install tf_keras==2.19.0 tensorflow-cpu==2.19.1 cnn2snn==2.19.3

Run from the repository root:

    /tmp/kerasvenv/bin/python scripts/check_keras_compat.py [SAMPLES_DIR]

Without SAMPLES_DIR the samples are written first with
``cargo run -p akida-tests --example write_keras_samples -- <tmp dir>``.
Exit status 0 when every file passes, 1 otherwise.
"""

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "tests", "data", "reference", "vectors")
QUANTIZED_CLASSES = ("QuantizedConv2D", "QuantizedSeparableConv2D",
                     "QuantizedDense", "QuantizedReLU", "ActivationDiscreteRelu")


def write_samples():
    out = tempfile.mkdtemp(prefix="akida_keras_samples_")
    subprocess.run(["cargo", "run", "-q", "-p", "akida-tests", "--example",
                    "write_keras_samples", "--", out], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return out


def is_quantized(path):
    with h5py.File(path, "r") as f:
        config = f.attrs["model_config"]
    if isinstance(config, bytes):
        config = config.decode()
    classes = {layer["class_name"] for layer in json.loads(config)["config"]["layers"]}
    return bool(classes & set(QUANTIZED_CLASSES))


def load(path):
    import cnn2snn
    import tf_keras
    if is_quantized(path):
        return cnn2snn.load_quantized_model(path), "cnn2snn.load_quantized_model"
    return tf_keras.models.load_model(path), "tf_keras.models.load_model"


def weights_equal(model, path):
    """Every weight of the loaded model equals its dataset in the file."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"]
        for layer in model.layers:
            for w in layer.weights:
                stored = group[layer.name][w.name][()]
                if stored.shape != tuple(w.shape) or not np.array_equal(
                        stored.view(np.uint32), w.numpy().view(np.uint32)):
                    return f"{w.name} differs"
    return None


def check(path):
    model, loader = load(path)
    problem = weights_equal(model, path)
    shape = (2,) + tuple(model.input_shape[1:])
    x = np.random.default_rng(0).integers(0, 256, size=shape).astype("float32")
    y = model.predict(x, verbose=0)
    name = os.path.basename(path)
    if problem is None and name.startswith("rewritten_"):
        original, _ = load(os.path.join(REFERENCE, name[len("rewritten_"):]))
        if not np.array_equal(original.predict(x, verbose=0), y):
            problem = "predictions differ from the original file's"
    status = "ok" if problem is None else f"FAIL ({problem})"
    print(f"{status:4} {name}: {loader}, {len(model.layers)} layers, "
          f"{model.count_params()} params, output {y.shape}")
    return problem is None


def main():
    samples = sys.argv[1] if len(sys.argv) > 1 else write_samples()
    paths = sorted(os.path.join(samples, n) for n in os.listdir(samples) if n.endswith(".h5"))
    ok = True
    for path in paths:
        try:
            ok &= check(path)
        except Exception as e:  # report every file, then fail
            print(f"FAIL {os.path.basename(path)}: {type(e).__name__}: {e}")
            ok = False
    print(f"{len(paths)} files, {'all loaded' if ok else 'FAILURES'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
