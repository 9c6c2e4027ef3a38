#!/usr/bin/env bash
# Issue 8 before/after: `akida run` batch inference rate (its own report),
# base (9c82035) vs after (main before issue 12), interleaved, same inputs.
set -u
K=$(cd "$(dirname "$0")/.." && pwd)/tests/data/reference/vectors/ds_cnn_kws_iq8_wq4_aq4.fbz
C=${CIFAR_FBZ:?made as in the issue 4 section}
cd /tmp
python3 -c "
import numpy as np; r=np.random.default_rng(1)
np.save('/tmp/abk.npy', r.integers(0,256,(1000,49,10,1),dtype=np.uint8))
np.save('/tmp/abc.npy', r.integers(0,256,(200,32,32,3),dtype=np.uint8))"
for round in 1 2 3; do
  for tree in base after; do
    bin=$BASE_AKIDA; [ $tree = after ] && bin=$AFTER_AKIDA
    k=$($bin run -m $K -i /tmp/abk.npy -o /tmp/abk.$tree.npy | grep -o '[0-9]* images/s' | head -1)
    c=$($bin run -m $C -i /tmp/abc.npy -o /tmp/abc.$tree.npy | grep -o '[0-9]* images/s' | head -1)
    echo "round $round $tree: kws $k, cifar10 $c"
  done
done
cmp /tmp/abk.base.npy /tmp/abk.after.npy && cmp /tmp/abc.base.npy /tmp/abc.after.npy && echo "outputs identical"
