#!/usr/bin/env python3
"""Checks by hand (not in CI) that a quantized model tuned by akida-rs
(`*_train tune`) is a cnn2snn model BrainChip's own tools take as theirs:
cnn2snn 2.19.3 loads it (`load_quantized_model`) and converts it, and the
Akida model it makes holds the same variables (integer weights, thresholds,
act_steps, per layer) as the one our `cnn2snn convert` writes, and gives the
same outputs.

Usage (a Python with cnn2snn==2.19.3 and akida==2.19.3, e.g. /work/bc-venv):

    cnn2snn -m TUNED.h5 convert -s OURS.fbz
    /work/bc-venv/bin/python scripts/check_tuned_with_cnn2snn.py TUNED.h5 OURS.fbz [INPUTS.npy]

INPUTS.npy (uint8, N x H x W x C) defaults to 64 random images. Prints one
line per layer and exits 0 only if every variable and every output is equal.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    h5, fbz = sys.argv[1], sys.argv[2]
    import akida
    import cnn2snn

    keras_model = cnn2snn.load_quantized_model(h5)
    theirs = cnn2snn.convert(keras_model)
    ours = akida.Model(fbz)
    ok = True
    if len(theirs.layers) != len(ours.layers):
        print(f"layer count: cnn2snn {len(theirs.layers)}, ours {len(ours.layers)}")
        return 1
    for a, b in zip(theirs.layers, ours.layers):
        names = sorted(a.variables.names)
        if names != sorted(b.variables.names):
            print(f"{a.name}: variables {names} vs {sorted(b.variables.names)}")
            ok = False
            continue
        diffs = []
        for n in names:
            va, vb = np.asarray(a.variables[n]), np.asarray(b.variables[n])
            if va.shape != vb.shape or not np.array_equal(va, vb):
                diffs.append(f"{n} ({int(np.sum(va != vb)) if va.shape == vb.shape else 'shape'} differ)")
        status = "equal" if not diffs else "DIFFERENT: " + ", ".join(diffs)
        print(f"{a.name:<16} {', '.join(names)}: {status}")
        ok &= not diffs
    if len(sys.argv) > 3:
        x = np.load(sys.argv[3])
    else:
        shape = (64,) + tuple(theirs.input_shape)
        x = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    fa, fb = theirs.forward(x), ours.forward(x)
    same = np.array_equal(fa, fb)
    print(f"forward on {x.shape[0]} inputs: {'equal' if same else 'DIFFERENT'}"
          f" ({fa.size} elements)")
    ok &= same
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
