"""OpticDiscSeg, PaddleSeg's small optic-disc segmentation set (2 classes)."""
from __future__ import annotations

import textwrap
from typing import Any

from ..registry import DATASETS
from .dataset import Dataset
from .download import ensure_dataset

URL = "https://paddleseg.bj.bcebos.com/dataset/optic_disc_seg.zip"
LAYOUT = """\
    optic_disc_seg/
        JPEGImages/*.jpg  Annotations/*.png   (labels: palette PNGs, 0 background, 1 disc)
        train_list.txt val_list.txt test_list.txt   'image_path label_path' per line"""


@DATASETS.register
class OpticDiscSeg(Dataset):
    __doc__ = """OpticDiscSeg: background and optic disc.

    Layout::

""" + textwrap.indent(LAYOUT, "    ")

    NUM_CLASSES = 2
    CLASSES = ("background", "optic_disc")

    def __init__(self, dataset_root: str, mode: str = "train", transforms: Any = (),
                 download: bool = False, skip_bad_files: bool = False):
        root = ensure_dataset(dataset_root, "OpticDiscSeg", LAYOUT, URL, download)
        super().__init__(root, self.NUM_CLASSES, mode, transforms,
                         train_path="train_list.txt", val_path="val_list.txt",
                         test_path="test_list.txt", skip_bad_files=skip_bad_files)
