#!/usr/bin/env python3
"""Checks by hand (not in CI) where a tuned model's Keras-vs-Akida
disagreement comes from: runs TensorFlow's own forward pass of the
cnn2snn-quantized Keras model (cnn2snn 2.19.3 loads it) and BrainChip's
engine on the converted model, on the inputs `dump_split` wrote, and
compares both with our Keras forward pass (top-1 classes).

    cargo run --release -p akida-train --example dump_split -- Q.h5 DATA 12 OUT
    /work/bc-venv/bin/python scripts/compare_with_tensorflow.py Q.h5 Q.fbz OUT
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    h5, fbz, d = sys.argv[1], sys.argv[2], sys.argv[3]
    import akida
    import cnn2snn

    x = np.load(os.path.join(d, "x.npy"))
    y = np.load(os.path.join(d, "y.npy"))
    ours = np.load(os.path.join(d, "keras.npy"))
    tf = cnn2snn.load_quantized_model(h5).predict(x.astype(np.float32), verbose=0)
    engine = akida.Model(fbz).predict(x)
    top = {k: v.reshape(len(x), -1).argmax(1) for k, v in
           {"ours": ours, "tensorflow": tf, "engine": engine}.items()}
    for k, t in top.items():
        print(f"accuracy {k:<10} {np.mean(t == y):.4f}")
    for a, b in [("ours", "tensorflow"), ("ours", "engine"), ("tensorflow", "engine")]:
        same = int(np.sum(top[a] == top[b]))
        print(f"top-1 agreement {a} vs {b}: {same} of {len(x)} ({100 * same / len(x):.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
