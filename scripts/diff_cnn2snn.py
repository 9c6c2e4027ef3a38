#!/usr/bin/env python3
"""Differential test of our cnn2snn against BrainChip's, on seeded random Keras models.

Usage (from the repository root, not part of CI):

    python3 scripts/diff_cnn2snn.py [--models N] [--first-seed S] [--inputs K]
                                     [--bin DIR] [--work DIR] [--keep] [--verbose]

For each seed, a random tf_keras model is built over what Akida 1.0 converts
(Conv2D, SeparableConv2D or Dense first layers; inputs with 1, 3 or other
channel counts, and feature vectors; 'same' and 'valid' padding; strides 1
and 2; max pooling, odd sizes too, and global average pooling; batch
normalization before and after pooling, with statistics measured on the
model's own activations; biases on and off; Rescaling with and without an
offset; ReLU with several max values; weight bits 2 to 8 and activation bits
1 to 4, a few outside what the converter takes; 1 to 8 neural layers), with
realistic weight scales, and saved as `float.h5`. Then:

* BrainChip: `cnn2snn.quantize` (saved as `bc_q.h5`), `cnn2snn.convert`
  (`bc.fbz`), and the engine's `forward` (and `predict`) on K random inputs;
* ours, path A: `cnn2snn -m float.h5 quantize ... -s ours_q.h5`, then
  `cnn2snn -m ours_q.h5 convert -s a.fbz`;
* ours, path B: `cnn2snn -m bc_q.h5 convert -s b.fbz`;
* our `a.fbz` and `b.fbz` are loaded by the engine (in a child process: a
  malformed file can crash it) and every layer's type, params and variables
  (weights, thresholds, act_steps as float32 bit patterns) are compared with
  BrainChip's model; our runtime (`akida run`, and `--predict`) runs the same
  inputs and every output element is compared with the engine's.

A model that one side refuses and the other converts is a mismatch too
(both refusing is counted apart). Prints the models, layers, variable
elements and output elements compared, per path, and every mismatch with its
seed; the closing line reports the mismatches. Exit status 0 when there is
none. Rerun one model with `--first-seed S --models 1 --keep --verbose`.

BrainChip's tools: if `import cnn2snn, akida, tf_keras` fails here, the
script creates a virtual environment ($CNN2SNN_VENV, default
/tmp/cnn2snn-venv), pip-installs tensorflow-cpu==2.19.1, tf_keras==2.19.0,
cnn2snn==2.19.3 and akida==2.19.3 into it (PyPI) and runs itself again with
that interpreter. Ours: `cargo build --release -p akida-host` (run unless
--bin names a directory holding `cnn2snn` and `akida`).
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
PINS = ["tensorflow-cpu==2.19.1", "tf_keras==2.19.0", "cnn2snn==2.19.3", "akida==2.19.3"]
ENGINE_VERSION = "2.19.3"


def ensure_tools():
    """Re-runs this script under a venv holding BrainChip's tools if needed."""
    try:
        import akida  # noqa: F401
        import cnn2snn  # noqa: F401
        import tf_keras  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("DIFF_CNN2SNN_IN_VENV"):
        sys.exit("cnn2snn, akida or tf_keras is still not importable inside the virtual environment")
    venv = Path(os.environ.get("CNN2SNN_VENV", "/tmp/cnn2snn-venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"[diff] creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import akida, cnn2snn, tf_keras"], capture_output=True)
    if probe.returncode != 0:
        print(f"[diff] pip install {' '.join(PINS)} into {venv}", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet"] + PINS, check=True)
    env = dict(os.environ, DIFF_CNN2SNN_IN_VENV="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve())] + sys.argv[1:], env)


# ---------------------------------------------------------------------------
# Random models
# ---------------------------------------------------------------------------

RELU_MAX = [6.0, 6.0, 1.0, 2.5, 4.0, 0.75, None]


def spec_of(seed):
    """The description of model `seed`: plain data, so a mismatch can be replayed."""
    r = random.Random(seed)
    spec = {"seed": seed}
    # Input: an image with 1 or 3 channels (InputConvolutional), an image with
    # another channel count, or a feature vector (both InputData).
    kind = r.choices(["image", "channels", "vector"], weights=[5, 3, 2])[0]
    if kind == "image":
        shape = [r.randint(5, 20), r.randint(5, 20), r.choice([1, 3])]
    elif kind == "channels":
        shape = [r.randint(3, 14), r.randint(3, 14), r.choice([2, 4, 5, 6, 8, 16])]
    else:
        shape = [r.choice([2, 5, 8, 16, 24, 40, 64])]
    # A few inputs of 1 or 3 features: cnn2snn refuses a Dense first layer there.
    if kind == "vector" and r.random() < 0.04:
        shape = [r.choice([1, 3])]
    spec["input"] = shape
    # Rescaling: image inputs take (1/255, 0), (1/127.5, -1) or others; an
    # InputData input only without offset (rarely with one: cnn2snn refuses).
    if kind == "image":
        spec["rescaling"] = r.choice([None, [1 / 255, 0.0], [1 / 127.5, -1.0], [1 / 64, -0.5],
                                      [1 / 255, 0.0], [0.5, 0.0]])
    else:
        spec["rescaling"] = r.choice([None, None, [1 / 15, 0.0], [0.25, 0.0], [1.0, 0.0]])
        if r.random() < 0.03:
            spec["rescaling"] = [1 / 15, -0.5]
    # Bits: mostly what the converter takes, a few it refuses.
    spec["wq"] = r.choices([2, 4, 8, 1, 3, 5, 6, 7], weights=[6, 12, 6, 0.2, 0.2, 0.2, 0.2, 0.2])[0]
    spec["aq"] = r.choices([1, 2, 4, 3, 8], weights=[5, 6, 10, 0.3, 0.3])[0]
    spec["iq"] = r.choices([2, 4, 8, 5, 7], weights=[4, 6, 8, 0.3, 0.3])[0]
    n_layers = r.choices(range(1, 9), weights=[3, 5, 5, 4, 3, 2, 2, 1])[0]
    layers = []
    spatial = len(shape) == 3
    h, w = (shape[0], shape[1]) if spatial else (1, 1)
    for i in range(n_layers):
        last = i == n_layers - 1
        block = {}
        if spatial:
            choices = ["conv", "sep", "dense"]
            weights = [6, 4, 1 if i > 0 or kind != "image" else 0]
            if i == 0 and kind == "image":
                weights = [1, 0, 0]
                if r.random() < 0.03:
                    weights = [0, 1, 1]  # cnn2snn refuses: first layer not Conv2D
            neural = r.choices(choices, weights=weights)[0]
        else:
            neural = "dense"
        block["type"] = neural
        if neural == "dense":
            if spatial:
                block["flatten"] = "flatten" if r.random() < 0.8 else "reshape"
                if block["flatten"] == "reshape" and (h, w) != (1, 1):
                    block["flatten"] = "flatten"
            block["units"] = r.choice([2, 4, 8, 10, 16, 32])
            spatial = False
            h = w = 1
        else:
            k = r.choice([1, 3, 3, 3, 5]) if neural == "conv" else r.choice([3, 3, 5])
            if r.random() < 0.1:
                k = [k, r.choice([1, 3])]
            else:
                k = [k, k]
            padding = "same" if r.random() < 0.75 else "valid"
            if padding == "valid" and (k[0] > h or k[1] > w):
                padding = "same"
            stride = 2 if (r.random() < 0.2 and h >= 4 and w >= 4) else 1
            # The engine refuses a stride above the kernel (but on the input
            # convolution): keep a few such models only.
            if stride > min(k) and (i > 0 or kind != "image") and r.random() < 0.8:
                stride = 1
            block.update(filters=r.choice([2, 4, 6, 8, 12, 16, 24, 32]), kernel=k, stride=stride,
                         padding=padding)
            if padding == "same":
                h, w = -(-h // stride), -(-w // stride)
            else:
                h, w = (h - k[0]) // stride + 1, (w - k[1]) // stride + 1
        block["bias"] = r.random() < 0.5
        block["bn"] = r.random() < 0.6
        pool = None
        if neural != "dense":
            roll = r.random()
            if roll < 0.25 and h >= 2 and w >= 2:
                size = r.choice([[2, 2], [2, 2], [3, 3], [3, 2], [1, 2]])
                pstride = r.choice([size, size, [2, 2], [1, 1]])
                # The engine refuses a pooling stride above its size: rarely.
                if any(s > z for s, z in zip(pstride, size)) and r.random() < 0.8:
                    pstride = size
                ppad = block["padding"]
                if ppad == "valid" and (size[0] > h or size[1] > w):
                    size = [min(size[0], h), min(size[1], w)]
                if r.random() < 0.02:
                    ppad = "valid" if ppad == "same" else "same"  # cnn2snn refuses
                pool = {"type": "max", "size": size, "stride": pstride, "padding": ppad}
                if ppad == "same":
                    h, w = -(-h // pstride[0]), -(-w // pstride[1])
                else:
                    h, w = (h - size[0]) // pstride[0] + 1, (w - size[1]) // pstride[1] + 1
            elif roll < 0.4 and (not last or r.random() < 0.5):
                pool = {"type": "gap"}
                h = w = 1
                spatial = False
        block["pool"] = pool
        # Batch normalization before or after the pooling.
        block["bn_after_pool"] = bool(pool and block["bn"] and r.random() < 0.5)
        block["negative_gamma"] = block["bn"] and r.random() < 0.015
        if last and r.random() < 0.7:
            block["relu"] = False
        else:
            block["relu"] = True
            block["relu_max"] = r.choice(RELU_MAX)
        block["dropout"] = r.random() < 0.1
        if pool and pool["type"] == "gap" and not last and r.random() < 0.3:
            block["reshape_after_gap"] = True
        layers.append(block)
        if h < 1 or w < 1:
            break
    spec["layers"] = layers
    spec["softmax"] = not layers[-1]["relu"] and r.random() < 0.3
    spec["weight_scale"] = r.choice([0.3, 0.6, 1.0, 1.0, 1.5, 3.0])
    return spec


def build_model(spec):
    """The float tf_keras model of a spec, with seeded weights and batch
    normalization statistics measured on its own activations."""
    import numpy as np
    import tf_keras as keras
    from tf_keras import layers as L

    rng = np.random.default_rng(spec["seed"])
    inp = keras.Input(tuple(spec["input"]), name="input")
    x = inp
    if spec["rescaling"] is not None:
        scale, offset = spec["rescaling"]
        x = L.Rescaling(scale, offset, name="rescaling")(x)
    bns = []
    for i, b in enumerate(spec["layers"]):
        name = f"l{i}"
        if b["type"] == "dense":
            if b.get("flatten") == "flatten":
                x = L.Flatten(name=f"{name}_flatten")(x)
            elif b.get("flatten") == "reshape":
                x = L.Reshape((int(x.shape[-1]),), name=f"{name}_reshape")(x)
            x = L.Dense(b["units"], use_bias=b["bias"], name=name)(x)
        elif b["type"] == "conv":
            x = L.Conv2D(b["filters"], tuple(b["kernel"]), strides=b["stride"], padding=b["padding"],
                         use_bias=b["bias"], name=name)(x)
        else:
            x = L.SeparableConv2D(b["filters"], tuple(b["kernel"]), strides=b["stride"],
                                  padding=b["padding"], use_bias=b["bias"], name=name)(x)
        pool = b["pool"]
        if b["bn"] and not b["bn_after_pool"]:
            bn = L.BatchNormalization(name=f"{name}_bn")
            x = bn(x)
            bns.append((bn, b))
        if pool and pool["type"] == "max":
            x = L.MaxPooling2D(tuple(pool["size"]), tuple(pool["stride"]), padding=pool["padding"],
                               name=f"{name}_pool")(x)
        elif pool:
            x = L.GlobalAveragePooling2D(name=f"{name}_gap")(x)
        if b["bn"] and b["bn_after_pool"]:
            bn = L.BatchNormalization(name=f"{name}_bn")
            x = bn(x)
            bns.append((bn, b))
        if b.get("reshape_after_gap"):
            x = L.Reshape((1, 1, int(x.shape[-1])), name=f"{name}_reshape_gap")(x)
        if b["relu"]:
            x = L.ReLU(b["relu_max"], name=f"{name}_relu")(x)
        if b["dropout"]:
            x = L.Dropout(0.2, name=f"{name}_dropout")(x)
    if spec["softmax"]:
        x = L.Activation("softmax", name="softmax")(x)
    model = keras.Model(inp, x, name=f"diff_{spec['seed']}")
    # He-like weights at a random scale, per-channel spread; biases small.
    for layer in model.layers:
        if isinstance(layer, (L.Conv2D, L.Dense, L.SeparableConv2D)):
            new = []
            for wt in layer.get_weights():
                if wt.ndim == 1:
                    new.append(rng.normal(0, 0.3, wt.shape).astype("float32"))
                    continue
                fan_in = int(np.prod(wt.shape[:-1]))
                std = spec["weight_scale"] * np.sqrt(2.0 / max(fan_in, 1))
                spread = np.exp(rng.normal(0, 0.5, wt.shape[-1]))
                new.append((rng.normal(0, std, wt.shape) * spread).astype("float32"))
            layer.set_weights(new)
    # Batch normalization: statistics of the layer's own input on random data
    # (one eager call per batch normalization, each seeing the ones before).
    data = random_float_inputs(spec, 64, rng)
    probe = keras.Model(model.input, [bn.input for bn, _ in bns]) if bns else None
    for k, (bn, b) in enumerate(bns):
        outs = probe(data, training=False)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        act = np.asarray(outs[k])
        axes = tuple(range(act.ndim - 1))
        mean = act.mean(axis=axes) * rng.uniform(0.8, 1.2, act.shape[-1])
        var = act.var(axis=axes) * rng.uniform(0.7, 1.4, act.shape[-1]) + 1e-3
        gamma = rng.uniform(0.5, 1.5, act.shape[-1])
        if b["negative_gamma"]:
            gamma[rng.integers(0, len(gamma))] *= -1
        beta = rng.normal(0.3, 0.5, act.shape[-1])
        bn.set_weights([w.astype("float32") for w in (gamma, beta, mean, var)])
    return model


def input_max(spec):
    """Highest value of the Akida input: 255 for an image, 15 for InputData."""
    shape = spec["input"]
    return 255 if shape[-1] in (1, 3) else 15


def random_akida_inputs(spec, n, rng):
    import numpy as np

    hi = input_max(spec)
    shape = spec["input"] if len(spec["input"]) == 3 else [1, 1, spec["input"][0]]
    x = rng.integers(0, hi + 1, size=[n] + list(shape))
    # Some sparsity, as events.
    x[rng.random(x.shape) < 0.3] = 0
    return x.astype(np.uint8)


def random_float_inputs(spec, n, rng):
    """Keras inputs matching the Akida inputs (before the Rescaling)."""
    import numpy as np

    x = rng.integers(0, input_max(spec) + 1, size=[n] + list(spec["input"]))
    return x.astype(np.float32)


# ---------------------------------------------------------------------------
# Running both sides
# ---------------------------------------------------------------------------


def short(e):
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[-1][:300] if text else type(e).__name__


def brainchip(spec, model, work, inputs):
    """BrainChip's quantize and convert; the engine's outputs. Returns a dict."""
    import numpy as np
    import cnn2snn

    out = {}
    try:
        q = cnn2snn.quantize(model, weight_quantization=spec["wq"], activ_quantization=spec["aq"],
                             input_weight_quantization=spec["iq"])
        q.save(str(work / "bc_q.h5"), include_optimizer=False)
    except Exception as e:  # noqa: BLE001 - any refusal is a result
        out["refused"] = "quantize: " + short(e)
        return out
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ak = cnn2snn.convert(q)
        ak.save(str(work / "bc.fbz"))
    except Exception as e:  # noqa: BLE001
        out["refused"] = "convert: " + short(e)
        return out
    out["forward"] = ak.forward(inputs)
    last = ak.layers[-1]
    if "activation" in last.parameters.__dir__() and not last.parameters.activation:
        out["predict"] = ak.predict(inputs)
    np.save(work / "bc_forward.npy", out["forward"])
    # Whether the AKD1000 holds it (the engine's mapping, hardware only).
    import akida

    try:
        ak.map(akida.AKD1000(), hw_only=True)
        out["maps"] = None
    except Exception as e:  # noqa: BLE001
        out["maps"] = short(e)
    return out


def run(cmd, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def ours(spec, work, binaries):
    """Our two paths: (A) quantize then convert the float file; (B) convert
    cnn2snn's quantized file. Returns {path: None or refusal text}."""
    cnn2snn = str(binaries / "cnn2snn")
    result = {}
    q = run([cnn2snn, "-m", str(work / "float.h5"), "quantize", "-iq", str(spec["iq"]),
             "-wq", str(spec["wq"]), "-aq", str(spec["aq"]), "-s", str(work / "ours_q.h5")])
    if q.returncode != 0:
        result["A"] = "quantize: " + (q.stderr.strip().splitlines() or ["?"])[0][:300]
    else:
        c = run([cnn2snn, "-m", str(work / "ours_q.h5"), "convert", "-s", str(work / "a.fbz")])
        result["A"] = None if c.returncode == 0 else "convert: " + " ".join(c.stderr.split())[:400]
    if (work / "bc_q.h5").exists():
        c = run([cnn2snn, "-m", str(work / "bc_q.h5"), "convert", "-s", str(work / "b.fbz")])
        result["B"] = None if c.returncode == 0 else "convert: " + " ".join(c.stderr.split())[:400]
        check = run([cnn2snn, "-m", str(work / "bc_q.h5"), "check"])
        result["warnings"] = sorted({line.split("]")[0].split("[")[-1]
                                     for line in (check.stdout + check.stderr).splitlines()
                                     if line.startswith("warning [")})
    else:
        result["B"] = "skipped (cnn2snn did not quantize)"
    return result


def engine_worker():
    """Child process: for each request line (JSON: BrainChip's file, our
    files, the report path) loads them in the engine, compares, writes the
    report and answers `done`. A file that crashes the engine ends the
    process; the parent reports it and starts another one."""
    import akida

    assert akida.__version__ == ENGINE_VERSION, akida.__version__
    for line in sys.stdin:
        request = json.loads(line)
        compare_in_engine(request["bc"], request["paths"], request["out"])
        print("done", flush=True)
    return 0


class EngineWorker:
    """The parent's handle on the engine worker process."""

    def __init__(self, log):
        self.process = None
        self.log = log

    def compare(self, bc, paths, out):
        """Runs one comparison; `None` on success, else why it failed."""
        if self.process is None or self.process.poll() is not None:
            with open(self.log, "a") as log:
                self.process = subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--engine-worker"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        request = json.dumps({"bc": str(bc), "paths": paths, "out": str(out)})
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline().strip()
        except (BrokenPipeError, OSError) as e:
            answer = f"pipe: {e}"
        if answer == "done":
            return None
        status = self.process.poll()
        self.process.kill()
        self.process.wait()
        err = Path(self.log).read_text(errors="replace").strip().splitlines()[-1:]
        self.process = None
        return (err or [answer or f"exit status {status}"])[-1][:300]

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def compare_in_engine(bc, theirs_paths, out_json):
    """Loads BrainChip's and our files in the engine and compares layer
    types, params and variables bit for bit."""
    import akida
    import numpy as np

    ref = akida.Model(bc)
    report = {}
    for tag, path in theirs_paths.items():
        mismatches, layers, elements = [], 0, 0
        try:
            model = akida.Model(path)
        except Exception as e:  # noqa: BLE001
            report[tag] = {"mismatches": [f"the engine does not load our file: {short(e)}"],
                           "layers": 0, "elements": 0}
            continue
        if len(model.layers) != len(ref.layers):
            mismatches.append(f"{len(model.layers)} layers, cnn2snn has {len(ref.layers)}")
        for i, (a, b) in enumerate(zip(ref.layers, model.layers)):
            layers += 1
            pa, pb = a.parameters, b.parameters
            if pa.layer_type != pb.layer_type:
                mismatches.append(f"layer {i} `{a.name}`: type {pb.layer_type}, cnn2snn has {pa.layer_type}")
                continue
            for key in [k for k in dir(pa) if not k.startswith("_")]:
                va, vb = getattr(pa, key), getattr(pb, key, None)
                if va != vb:
                    mismatches.append(f"layer {i} `{a.name}`: param {key} = {vb}, cnn2snn has {va}")
            names_a, names_b = sorted(a.variables.names), sorted(b.variables.names)
            if names_a != names_b:
                mismatches.append(f"layer {i} `{a.name}`: variables {names_b}, cnn2snn has {names_a}")
            for name in names_a:
                if name not in names_b:
                    continue
                va, vb = np.asarray(a.variables[name]), np.asarray(b.variables[name])
                elements += va.size
                if va.shape != vb.shape or va.dtype != vb.dtype:
                    mismatches.append(f"layer {i} `{a.name}` {name}: {vb.dtype}{vb.shape}, "
                                      f"cnn2snn has {va.dtype}{va.shape}")
                    continue
                view = {4: np.uint32, 2: np.uint16, 1: np.uint8, 8: np.uint64}[va.dtype.itemsize]
                diff = np.flatnonzero(va.view(view) != vb.view(view))
                if diff.size:
                    k = diff[0]
                    mismatches.append(
                        f"layer {i} `{a.name}` {name}: {diff.size} of {va.size} differ; first at "
                        f"{np.unravel_index(k, va.shape)}: ours {vb.flat[k]!r}, cnn2snn {va.flat[k]!r}")
        report[tag] = {"mismatches": mismatches, "layers": layers, "elements": int(elements)}
    Path(out_json).write_text(json.dumps(report))


def compare_outputs(tag, want, path, what):
    """Every element of our output file against the engine's, bit for bit."""
    import numpy as np

    got = np.load(path)
    if got.shape != want.shape or got.dtype != want.dtype:
        return 0, [f"path {tag} {what}: ours {got.dtype}{got.shape}, engine {want.dtype}{want.shape}"]
    view = {4: np.uint32, 1: np.uint8}[want.dtype.itemsize]
    diff = np.flatnonzero(got.view(view) != want.view(view))
    if diff.size:
        k = diff[0]
        return want.size, [f"path {tag} {what}: {diff.size} of {want.size} elements differ; first at "
                           f"{np.unravel_index(k, want.shape)}: ours {got.flat[k]!r}, engine {want.flat[k]!r}"]
    return want.size, []


class Totals:
    def __init__(self):
        self.models = 0
        self.converted = 0
        self.both_refused = 0
        self.per_path = {p: {"layers": 0, "variables": 0, "outputs": 0, "models": 0} for p in "AB"}
        self.mismatches = []  # (seed, text)
        self.kinds = {}
        self.features = {}
        self.refusals = {}
        self.hardware = {"agree_maps": 0, "agree_refuses": 0, "we_warn_it_maps": [], "it_refuses_we_do_not": []}

    def count(self, key, table):
        table[key] = table.get(key, 0) + 1


def layer_kinds(bc_fbz):
    import akida

    m = akida.Model(str(bc_fbz))
    return [str(layer.parameters.layer_type).split(".")[-1] for layer in m.layers]


def features(spec):
    """Coverage labels of a converted model's spec."""
    out = set()
    shape = spec["input"]
    out.add("vector input" if len(shape) == 1 else f"{'image' if shape[-1] in (1, 3) else 'multi-channel'} input")
    if spec["rescaling"]:
        out.add("Rescaling with offset" if spec["rescaling"][1] else "Rescaling without offset")
    out.add(f"weights {spec['wq']} bits")
    out.add(f"first layer weights {spec['iq']} bits")
    out.add(f"activations {spec['aq']} bits")
    for b in spec["layers"]:
        if b["type"] != "dense":
            out.add(f"padding {b['padding']}")
            out.add(f"stride {b['stride']}")
            if b["kernel"][0] != b["kernel"][1]:
                out.add("non-square kernel")
        if b["pool"] and b["pool"]["type"] == "max":
            sz = b["pool"]["size"]
            out.add("max pooling " + ("odd size" if any(s % 2 for s in sz) else "even size"))
        elif b["pool"]:
            out.add("global average pooling")
        if b["bn"]:
            out.add("batch norm after pooling" if b["bn_after_pool"] else "batch norm before pooling")
        out.add("bias" if b["bias"] else "no bias")
        if b["relu"]:
            out.add(f"ReLU max {b['relu_max']}")
    out.add(f"{len(spec['layers'])} neural layers")
    out.add("last layer with activation" if spec["layers"][-1]["relu"] else "last layer potentials")
    return out


def one_model(seed, args, binaries, totals, engine):
    import numpy as np

    spec = spec_of(seed)
    work = Path(args.work) / f"seed_{seed}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    rng = np.random.default_rng(seed + 1_000_003)
    model = build_model(spec)
    model.save(str(work / "float.h5"), include_optimizer=False)
    inputs = random_akida_inputs(spec, args.inputs, rng)
    np.save(work / "inputs.npy", inputs)
    totals.models += 1
    bc = brainchip(spec, model, work, inputs)
    mine = ours(spec, work, binaries)
    found = []
    bc_refused = bc.get("refused")
    for tag in "AB":
        if tag == "B" and not (work / "bc_q.h5").exists():
            continue
        if bc_refused and mine[tag]:
            continue
        if bc_refused and not mine[tag]:
            found.append(f"path {tag}: cnn2snn refuses ({bc_refused}) but ours converts")
        elif mine[tag]:
            found.append(f"path {tag}: ours refuses ({mine[tag]}) but cnn2snn converts")
    if bc_refused:
        if not found:
            totals.both_refused += 1
            reason = bc_refused.split(". Receives")[0].split(" in layer")[0]
            reason = "".join("N" if ch.isdigit() else ch for ch in reason)[:90]
            totals.count(reason, totals.refusals)
        if args.verbose:
            print(f"  seed {seed}: both refuse: cnn2snn {bc_refused}; ours A {mine['A']}; ours B {mine['B']}")
    else:
        totals.converted += 1
        paths = {t: str(work / f"{t.lower()}.fbz") for t in "AB" if mine[t] is None}
        if paths:
            report = work / "engine.json"
            failure = engine.compare(work / "bc.fbz", paths, report)
            if failure is not None or not report.exists():
                found.append(f"the engine crashed or failed on our files: {failure}")
            else:
                for tag, r in json.loads(report.read_text()).items():
                    totals.per_path[tag]["layers"] += r["layers"]
                    totals.per_path[tag]["variables"] += r["elements"]
                    found += [f"path {tag}: {m}" for m in r["mismatches"]]
        for tag in paths:
            totals.per_path[tag]["models"] += 1
            for what, flag in (("forward", []), ("predict", ["--predict"])):
                if what not in bc:
                    continue
                out = work / f"{tag.lower()}_{what}.npy"
                r = run([str(binaries / "akida"), "run", "-m", paths[tag], "-i", str(work / "inputs.npy"),
                         "-o", str(out)] + flag)
                if r.returncode != 0:
                    found.append(f"path {tag} {what}: akida run failed: {' '.join(r.stderr.split())[:300]}")
                    continue
                n, m = compare_outputs(tag, bc[what], out, what)
                totals.per_path[tag]["outputs"] += n
                found += m
        warned = mine.get("warnings", [])
        if bc["maps"] is None and not warned:
            totals.hardware["agree_maps"] += 1
        elif bc["maps"] is not None and warned:
            totals.hardware["agree_refuses"] += 1
        elif bc["maps"] is None:
            totals.hardware["we_warn_it_maps"].append((seed, ", ".join(warned)))
        else:
            totals.hardware["it_refuses_we_do_not"].append((seed, bc["maps"]))
        for kind in layer_kinds(work / "bc.fbz"):
            totals.count(kind, totals.kinds)
        for f in features(spec):
            totals.count(f, totals.features)
    for text in found:
        totals.mismatches.append((seed, text))
        print(f"MISMATCH seed {seed}: {text}", flush=True)
    if not args.keep and not found:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------
# Fixtures for the Rust tests (tests/data/cnn2snn)
# ---------------------------------------------------------------------------


def named_specs():
    """The fixtures the tests name: a feature vector through three Dense
    layers with batch normalization, and a 5-channel image (InputData both)."""
    dense = {"type": "dense", "pool": None, "bn_after_pool": False, "negative_gamma": False,
             "dropout": False}
    vector = {"seed": 900_001, "input": [16], "rescaling": None, "wq": 4, "aq": 4, "iq": 4,
              "weight_scale": 1.0, "softmax": False, "layers": [
                  dict(dense, units=24, bias=True, bn=True, relu=True, relu_max=6.0),
                  dict(dense, units=12, bias=False, bn=True, relu=True, relu_max=4.0),
                  dict(dense, units=5, bias=True, bn=True, relu=False)]}
    conv = {"bias": False, "bn": True, "bn_after_pool": False, "negative_gamma": False, "dropout": False,
            "stride": 1, "padding": "same", "kernel": [3, 3], "relu": True, "relu_max": 6.0, "pool": None}
    image = {"seed": 900_002, "input": [12, 10, 5], "rescaling": [1 / 15, 0.0], "wq": 4, "aq": 4, "iq": 4,
             "weight_scale": 1.0, "softmax": True, "layers": [
                 dict(conv, type="conv", filters=8,
                      pool={"type": "max", "size": [2, 2], "stride": [2, 2], "padding": "same"}),
                 dict(conv, type="sep", filters=16, relu_max=4.0),
                 dict(conv, type="conv", filters=16, bias=True, pool={"type": "gap"}, bn_after_pool=True),
                 dict(dense, type="dense", units=6, bias=True, bn=False, relu=False)]}
    # 2-bit weights of a large scale on 8 features: sf = 1 / max|w| < 2/3, and
    # a 1-bit ReLU(0.75) step: act_step = sf * 0.75 * 2 / 16 < 1/16.
    small_step = {"seed": 900_003, "input": [8], "rescaling": None, "wq": 2, "aq": 1, "iq": 2,
                  "weight_scale": 3.0, "softmax": False, "refused_layer": "l0", "layers": [
                      dict(dense, units=4, bias=True, bn=False, relu=True, relu_max=0.75),
                      dict(dense, units=2, bias=True, bn=False, relu=False)]}
    # cnn2snn does not check the first layer's weight bits: 5 bits convert
    # (the engine holds them as int8), while a hidden layer needs 2, 4 or 8.
    odd_bits = {"seed": 900_004, "input": [9, 8, 3], "rescaling": [1 / 255, 0.0], "wq": 4, "aq": 4,
                "iq": 5, "weight_scale": 1.0, "softmax": False, "layers": [
                    dict(conv, type="conv", filters=8, bias=True),
                    dict(conv, type="conv", filters=4, pool={"type": "gap"}),
                    dict(dense, type="dense", units=3, bias=True, bn=False, relu=False)]}
    return {"input_data_vector": vector, "input_data_5_channels": image,
            "act_step_below_a_sixteenth": small_step, "input_conv_5_bit_weights": odd_bits}


def write_fixture(directory, name, spec, inputs_count=16):
    """float.h5, cnn2snn's q.h5 and engine.fbz, the engine's outputs
    (io.npz) and fixture.json (the spec, the bits, what cnn2snn said)."""
    import numpy as np

    out = Path(directory) / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = build_model(spec)
    model.save(str(out / "float.h5"), include_optimizer=False)
    inputs = random_akida_inputs(spec, inputs_count, np.random.default_rng(spec["seed"] + 1_000_003))
    bc = brainchip(spec, model, out, inputs)
    meta = {"spec": spec, "iq": spec["iq"], "wq": spec["wq"], "aq": spec["aq"],
            "made_by": "scripts/diff_cnn2snn.py --write-fixtures (tf_keras 2.19.0, cnn2snn 2.19.3, akida 2.19.3)"}
    for f in ("bc_forward.npy",):
        (out / f).unlink(missing_ok=True)
    if (out / "bc_q.h5").exists():
        (out / "bc_q.h5").rename(out / "q.h5")
    if "refused" in bc:
        meta["refused"] = bc["refused"]
        if "refused_layer" in spec:
            meta["refused_layer"] = spec["refused_layer"]
    else:
        (out / "bc.fbz").rename(out / "engine.fbz")
        arrays = {"inputs": inputs, "forward": bc["forward"]}
        if "predict" in bc:
            arrays["predict"] = bc["predict"]
        np.savez_compressed(out / "io.npz", **arrays)
    (out / "fixture.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"[diff] fixture {out}: {'refused: ' + bc['refused'] if 'refused' in bc else 'converted'}")


def write_fixtures(directory, seeds, specs):
    """The named fixtures, those of `seeds` (`seed_N`), and those of saved
    `spec.json` files (`NAME=PATH`: a mismatch's spec from a kept work
    directory, whatever generator made it)."""
    import tf_keras

    for name, spec in named_specs().items():
        tf_keras.backend.clear_session()
        write_fixture(directory, name, spec)
    for seed in seeds:
        tf_keras.backend.clear_session()
        write_fixture(directory, f"seed_{seed}", spec_of(seed))
    for item in specs:
        name, path = item.split("=", 1)
        spec = json.loads(Path(path).read_text())
        spec = spec.get("spec", spec)  # a fixture.json holds it under `spec`
        tf_keras.backend.clear_session()
        write_fixture(directory, name, spec)


def ensure_binaries(args):
    if args.bin:
        return Path(args.bin)
    print("[diff] cargo build --release -p akida-host", flush=True)
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "akida-host"], cwd=REPO, check=True)
    return REPO / "target" / "release"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=50, help="number of random models (default 50)")
    parser.add_argument("--first-seed", type=int, default=1, help="seed of the first model (default 1)")
    parser.add_argument("--inputs", type=int, default=8, help="random inputs per model (default 8)")
    parser.add_argument("--bin", help="directory of our cnn2snn and akida binaries (default: build them)")
    parser.add_argument("--work", help="working directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep every model's files, not only mismatches")
    parser.add_argument("--verbose", action="store_true", help="print each model and both sides' refusals")
    parser.add_argument("--write-fixtures", metavar="DIR",
                        help="write the named fixtures, and those of --fixture-seeds, into DIR; compare nothing")
    parser.add_argument("--fixture-seeds", default="", help="comma-separated seeds to write as fixtures")
    parser.add_argument("--fixture-spec", action="append", default=[], metavar="NAME=SPEC.json",
                        help="also write the model of a saved spec.json as fixture NAME (repeatable)")
    parser.add_argument("--engine-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    ensure_tools()
    if args.engine_worker:
        sys.exit(engine_worker())
    if args.write_fixtures:
        seeds = [int(s) for s in args.fixture_seeds.split(",") if s.strip()]
        write_fixtures(args.write_fixtures, seeds, args.fixture_spec)
        return 0
    binaries = ensure_binaries(args)
    tmp = None
    if args.work is None:
        tmp = tempfile.mkdtemp(prefix="diff-cnn2snn-")
        args.work = tmp
    import tf_keras

    totals = Totals()
    engine = EngineWorker(Path(args.work) / "engine_worker.log")
    start = time.time()
    seeds = range(args.first_seed, args.first_seed + args.models)
    for n, seed in enumerate(seeds, 1):
        tf_keras.backend.clear_session()
        try:
            one_model(seed, args, binaries, totals, engine)
        except Exception:  # noqa: BLE001 - a broken generator must not hide the others
            text = traceback.format_exc().strip().splitlines()[-1]
            totals.mismatches.append((seed, f"script error: {text}"))
            print(f"MISMATCH seed {seed}: script error: {text}", flush=True)
        if args.verbose or n % 25 == 0:
            print(f"[diff] {n}/{args.models} models, {time.time() - start:.0f} s, "
                  f"{len(totals.mismatches)} mismatches", flush=True)

    engine.close()
    print()
    print(f"models: {totals.models} (seeds {args.first_seed}..{args.first_seed + args.models - 1}), "
          f"converted by cnn2snn: {totals.converted}, refused by both: {totals.both_refused}")
    for tag, label in (("A", "quantize + convert of the float file"), ("B", "convert of cnn2snn's quantized file")):
        p = totals.per_path[tag]
        print(f"path {tag} ({label}): {p['models']} models, {p['layers']} layers, "
              f"{p['variables']} variable elements, {p['outputs']} output elements compared")
    print("refused by both, cnn2snn's reasons: " + "; ".join(
        f"{k} ({v})" for k, v in sorted(totals.refusals.items(), key=lambda kv: -kv[1])))
    hw = totals.hardware
    print(f"AKD1000 mapping (informational, not a mismatch): the engine maps and we warn nothing: "
          f"{hw['agree_maps']}; it refuses and we warn: {hw['agree_refuses']}; we warn but it maps: "
          f"{len(hw['we_warn_it_maps'])}; it refuses but we do not warn: {len(hw['it_refuses_we_do_not'])}")
    for label, items in (("we warn, it maps", hw["we_warn_it_maps"]),
                         ("it refuses, we do not warn", hw["it_refuses_we_do_not"])):
        counted = {}
        for seed, why in items:
            key = "".join("N" if ch.isdigit() else ch for ch in why)[:120]
            counted.setdefault(key, []).append(seed)
        for key, seeds in sorted(counted.items(), key=lambda kv: -len(kv[1])):
            print(f"  {label}: {key} ({len(seeds)}: seeds {', '.join(map(str, seeds[:5]))})")
    print("engine layer kinds converted: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.kinds.items())))
    print("coverage (converted models): " + "; ".join(f"{k} {v}" for k, v in sorted(totals.features.items())))
    by_path = {"A": 0, "B": 0}
    for _, text in totals.mismatches:
        for tag in "AB":
            if text.startswith(f"path {tag}"):
                by_path[tag] += 1
    print(f"mismatches: {len(totals.mismatches)} (path A {by_path['A']}, path B {by_path['B']}, "
          f"other {len(totals.mismatches) - by_path['A'] - by_path['B']}) in {time.time() - start:.0f} s")
    for seed, text in totals.mismatches:
        print(f"  seed {seed}: {text}")
    if tmp and not totals.mismatches and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    elif tmp:
        print(f"files kept in {tmp}")
    return 0 if not totals.mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
