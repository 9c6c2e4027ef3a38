#!/usr/bin/env python3
"""Checks the .fbz files akida-rs writes in BrainChip's own engine (akida 2.19.3).

Usage:
    python3 scripts/check_fbz_with_engine.py [--fbz-dir DIR] [--reference-dir DIR]

Our .fbz files:
    With --fbz-dir, every NAME.fbz in DIR. Without it, the script writes them
    into a temporary directory first, by running (from the repository root)
        AKIDA_FBZ_OUT=DIR cargo test -p akida-tests --test fbz write_our_fbz_files_when_asked
    which saves our model of every reference set with akida_host::model_file::save.
    (The Rust test `the_engine_runs_our_fbz_files` in tests/tests/fbz.rs writes
    them itself and passes --fbz-dir.)

Reference outputs:
    NAME.npz in --reference-dir (default: $AKIDA_REFERENCE_DIR, else
    tests/data/reference/vectors): `input_uint8`, `akida_forward`, `akida_predict`.

The engine:
    If `import akida` fails here, the script creates a virtual environment
    ($AKIDA_VENV, default /tmp/akida-venv), pip-installs akida==2.19.3 into it
    (PyPI; it needs only numpy) and runs itself again with that interpreter.

Each file is loaded in a child process (a malformed but well-formed buffer can
crash the engine instead of raising): akida.Model(path), then forward() and
predict() on the set's inputs, compared element for element with the
reference (int32 potentials exactly, float32 outputs bit for bit). Prints one
line per file and a closing `N passed, N failed` line; exits 0 only if every
file passed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

AKIDA_VERSION = "2.19.3"
REPO = Path(__file__).resolve().parent.parent


def ensure_engine():
    """Re-runs this script under a venv holding akida if it is not importable."""
    try:
        import akida  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("AKIDA_CHECK_IN_VENV"):
        sys.exit("akida is still not importable inside the virtual environment")
    venv = Path(os.environ.get("AKIDA_VENV", "/tmp/akida-venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"[fbz-check] creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import akida"], capture_output=True)
    if probe.returncode != 0:
        print(f"[fbz-check] pip install akida=={AKIDA_VERSION} into {venv}", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"akida=={AKIDA_VERSION}"],
            check=True,
        )
    env = dict(os.environ, AKIDA_CHECK_IN_VENV="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve())] + sys.argv[1:], env)


def child(fbz, npz):
    """Loads one file in the engine and compares its outputs; exit code 0 = equal."""
    import akida
    import numpy as np

    if akida.__version__ != AKIDA_VERSION:
        print(f"engine is akida {akida.__version__}, expected {AKIDA_VERSION}")
        return 1
    ref = np.load(npz)
    model = akida.Model(str(fbz))
    inputs = ref["input_uint8"]
    failures = []
    forward = model.forward(inputs)
    predict = model.predict(inputs)
    for what, got, want in (
        ("forward", forward, ref["akida_forward"]),
        ("predict", predict, ref["akida_predict"]),
    ):
        if got.dtype != want.dtype or got.shape != want.shape:
            failures.append(f"{what}: {got.dtype}{got.shape}, expected {want.dtype}{want.shape}")
            continue
        # Bit patterns: equal floats, equal signs of zero, no NaN tolerance.
        bits = np.uint32 if want.dtype.itemsize == 4 else np.uint8
        diff = np.flatnonzero(got.view(bits) != want.view(bits))
        if diff.size:
            i = diff[0]
            failures.append(
                f"{what}: {diff.size} of {want.size} elements differ; first at {i}: "
                f"got {got.flat[i]!r}, want {want.flat[i]!r}"
            )
    elements = forward.size + predict.size
    if failures:
        print("; ".join(failures))
        return 1
    print(f"{len(model.layers)} layers, {inputs.shape[0]} inputs, {elements} output elements equal")
    return 0


def write_our_files(directory):
    """Writes our .fbz of every reference set with the Rust test."""
    env = dict(os.environ, AKIDA_FBZ_OUT=str(directory))
    cmd = [
        "cargo", "test", "-q", "-p", "akida-tests", "--test", "fbz",
        "write_our_fbz_files_when_asked", "--", "--exact", "--nocapture",
    ]
    print(f"[fbz-check] writing our .fbz files: AKIDA_FBZ_OUT={directory} {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=REPO, env=env, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fbz-dir", type=Path, help="directory of our NAME.fbz files")
    parser.add_argument("--reference-dir", type=Path, help="directory of the reference NAME.npz")
    parser.add_argument("--child", nargs=2, metavar=("FBZ", "NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    ensure_engine()
    if args.child:
        sys.exit(child(Path(args.child[0]), Path(args.child[1])))

    reference = args.reference_dir or Path(
        os.environ.get("AKIDA_REFERENCE_DIR", REPO / "tests" / "data" / "reference" / "vectors")
    )
    with tempfile.TemporaryDirectory(prefix="akida-fbz-") as tmp:
        fbz_dir = args.fbz_dir
        if fbz_dir is None:
            fbz_dir = Path(tmp)
            write_our_files(fbz_dir)
        files = sorted(fbz_dir.glob("*.fbz"))
        if not files:
            sys.exit(f"no .fbz file in {fbz_dir}")
        passed, failed = 0, 0
        for fbz in files:
            npz = reference / f"{fbz.stem}.npz"
            if not npz.exists():
                print(f"FAIL {fbz.name}: no reference {npz}")
                failed += 1
                continue
            run = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(fbz), str(npz)],
                capture_output=True,
                text=True,
            )
            message = (run.stdout.strip() or run.stderr.strip()).splitlines()
            message = message[-1] if message else ""
            if run.returncode == 0:
                passed += 1
                print(f"ok   {fbz.name}: {message}")
            else:
                failed += 1
                how = f"killed by signal {-run.returncode}" if run.returncode < 0 else "failed"
                print(f"FAIL {fbz.name} ({how}): {message}")
        import akida

        print(f"engine akida {akida.__version__}, files from {fbz_dir}, references from {reference}")
        print(f"fbz engine check: {passed} passed, {failed} failed")
        sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
