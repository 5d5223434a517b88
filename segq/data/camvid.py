"""CamVid, SegNet's 11-class split of the Cambridge driving video frames (480x360)."""
from __future__ import annotations

import textwrap
from typing import Any

from ..registry import DATASETS
from .dataset import Dataset
from .download import ensure_dataset

LAYOUT = """\
    dataset_root/
        train/ trainannot/     367 images and 8-bit label PNGs
        val/   valannot/       101
        test/  testannot/      233
        train.txt val.txt test.txt   'image_path label_path' per line, relative to the root
    labels hold class ids 0-10; 11 is void"""


@DATASETS.register
class CamVid(Dataset):
    __doc__ = """CamVid (SegNet split): 11 classes; the void label 11 becomes ``ignore_index``.

    Layout::

""" + textwrap.indent(LAYOUT, "    ")

    NUM_CLASSES = 11
    CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence",
               "car", "pedestrian", "bicyclist")
    VOID = 11

    def __init__(self, dataset_root: str, mode: str = "train", transforms: Any = (),
                 ignore_index: int = 255, skip_bad_files: bool = False):
        root = ensure_dataset(dataset_root, "CamVid", LAYOUT)
        super().__init__(root, self.NUM_CLASSES, mode, transforms, train_path="train.txt",
                         val_path="val.txt", test_path="test.txt", ignore_index=ignore_index,
                         label_remap={self.VOID: ignore_index}, skip_bad_files=skip_bad_files)
