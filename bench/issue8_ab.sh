#!/usr/bin/env bash
# Issue 8 before/after: `akida run` batch inference rate (its own report),
# builds interleaved round by round on the same random inputs, outputs
# compared byte for byte against the first build's.
#
#   CIFAR_FBZ=M.fbz bench/issue8_ab.sh NAME=path/to/akida NAME=path/to/akida ...
#
# (CIFAR_FBZ: the 4/4/4 ds_cnn_cifar10 made as in the issue 4 section;
# ROUNDS, default 3; RAYON_NUM_THREADS=1 for one thread.)
set -u
K=$(cd "$(dirname "$0")/.." && pwd)/tests/data/reference/vectors/ds_cnn_kws_iq8_wq4_aq4.fbz
C=${CIFAR_FBZ:?made as in the issue 4 section}
[ $# -ge 2 ] || { echo "usage: CIFAR_FBZ=M.fbz $0 NAME=AKIDA NAME=AKIDA ..." >&2; exit 2; }
cd /tmp
python3 -c "
import numpy as np; r=np.random.default_rng(1)
np.save('/tmp/abk.npy', r.integers(0,256,(1000,49,10,1),dtype=np.uint8))
np.save('/tmp/abc.npy', r.integers(0,256,(200,32,32,3),dtype=np.uint8))"
first=${1%%=*}
for round in $(seq 1 "${ROUNDS:-3}"); do
  for pair in "$@"; do
    name=${pair%%=*}; bin=${pair#*=}
    k=$($bin run -m $K -i /tmp/abk.npy -o /tmp/abk.$name.npy | grep -o '[0-9]* images/s' | head -1)
    c=$($bin run -m $C -i /tmp/abc.npy -o /tmp/abc.$name.npy | grep -o '[0-9]* images/s' | head -1)
    echo "round $round $name: kws $k, cifar10 $c"
  done
done
for pair in "${@:2}"; do
  name=${pair%%=*}
  cmp /tmp/abk.$first.npy /tmp/abk.$name.npy && cmp /tmp/abc.$first.npy /tmp/abc.$name.npy \
    && echo "$name: outputs identical to $first"
done
