#!/usr/bin/env python3
"""Copies the keyword-spotting demo's clips (models/ds_cnn_kws_12/clips) from
the 4,890-clip Speech Commands set (tests/data/datasets/README.md says how to
build it): the first PER_CLASS clips of each class in the sorted
testing_list.txt, i.e. clips of the test split, which training never saw.

    scripts/pick_kws_clips.py SPEECH_COMMANDS_DIR OUT_DIR [PER_CLASS]
"""
import shutil
import sys
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])
per_class = int(sys.argv[3]) if len(sys.argv) > 3 else 4
taken = {}
for line in sorted((src / "testing_list.txt").read_text().split()):
    cls, name = line.split("/", 1)
    if len(taken.setdefault(cls, [])) < per_class:
        taken[cls].append(name)
for cls, names in sorted(taken.items()):
    (out / cls).mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / cls / name, out / cls / name)
for f in ["TESTSET_LICENSE", "TESTSET_README.md"]:
    shutil.copyfile(src / f, out / f)
print(f"{sum(len(v) for v in taken.values())} clips in {len(taken)} classes -> {out}")
