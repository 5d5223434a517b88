"""ADE20K scene parsing (SceneParsing challenge 2016, 150 classes)."""
from __future__ import annotations

import glob
import os
import textwrap
from typing import Any

from ..registry import DATASETS
from .dataset import SegDataset
from .download import ensure_dataset

URL = "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"
LAYOUT = """\
    ADEChallengeData2016/
        images/{training,validation}/*.jpg
        annotations/{training,validation}/*.png   (0 = other/unlabelled, 1..150 classes)"""


@DATASETS.register
class ADE20K(SegDataset):
    __doc__ = """ADE20K: label 0 (unlabelled) becomes the ignore index 255 and 1..150 become 0..149.

    Layout::

""" + textwrap.indent(LAYOUT, "    ")

    NUM_CLASSES = 150
    _SPLIT_DIR = {"train": "training", "val": "validation"}

    def __init__(self, dataset_root: str, mode: str = "train", transforms: Any = (),
                 download: bool = False, skip_bad_files: bool = False):
        remap = {0: 255, **{k: k - 1 for k in range(1, self.NUM_CLASSES + 1)}}
        super().__init__(self.NUM_CLASSES, mode, transforms, label_remap=remap,
                         modes=("train", "val"), skip_bad_files=skip_bad_files)
        self.dataset_root = ensure_dataset(dataset_root, "ADE20K", LAYOUT, URL, download)
        split = self._SPLIT_DIR[self.mode]
        img_dir = os.path.join(self.dataset_root, "images", split)
        label_dir = os.path.join(self.dataset_root, "annotations", split)
        images = sorted(glob.glob(os.path.join(img_dir, "*.jpg")))
        if not images:
            raise FileNotFoundError(f"no .jpg images in {img_dir}; expected:\n{LAYOUT}")
        for img in images:
            stem = os.path.splitext(os.path.basename(img))[0]
            self.file_list.append((img, os.path.join(label_dir, stem + ".png")))
