"""PASCAL VOC 2012 segmentation (20 classes + background)."""
from __future__ import annotations

import os
import textwrap
from typing import Any

from ..registry import DATASETS
from .dataset import SegDataset
from .download import ensure_dataset
from .list_file import ListEntry, parse_list_lines

URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
LAYOUT = """\
    VOCdevkit/VOC2012/
        JPEGImages/<name>.jpg
        SegmentationClass/<name>.png      (palette PNGs: the palette index is the class id)
        SegmentationClassAug/<name>.png   (only for mode 'trainaug')
        ImageSets/Segmentation/{train,val,trainval}.txt   one <name> per line
        ImageSets/Segmentation/aug.txt                    (only for mode 'trainaug')"""


@DATASETS.register
class PascalVOC(SegDataset):
    __doc__ = """PASCAL VOC 2012: 21 classes; 255 (object borders) ignored. ``dataset_root`` is the
    VOCdevkit folder, as in PaddleSeg.

    Layout::

""" + textwrap.indent(LAYOUT, "    ")

    NUM_CLASSES = 21
    CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")

    def __init__(self, dataset_root: str, mode: str = "train", transforms: Any = (),
                 download: bool = False, skip_bad_files: bool = False):
        super().__init__(self.NUM_CLASSES, mode, transforms,
                         modes=("train", "val", "trainval", "trainaug"),
                         skip_bad_files=skip_bad_files)
        self.dataset_root = ensure_dataset(dataset_root, "PascalVOC", LAYOUT, URL, download)
        voc = os.path.join(self.dataset_root, "VOC2012")
        sets = os.path.join(voc, "ImageSets", "Segmentation")
        if self.mode == "trainaug":
            # SegmentationClassAug holds labels for the train names and the SBD extras alike
            groups = [("train.txt", "SegmentationClassAug"), ("aug.txt", "SegmentationClassAug")]
        else:
            groups = [(f"{self.mode}.txt", "SegmentationClass")]
        for list_name, label_dir in groups:
            list_path = os.path.join(sets, list_name)
            if not os.path.isfile(list_path):
                raise FileNotFoundError(f"list file not found: {list_path}; expected:\n{LAYOUT}")
            with open(list_path, encoding="utf-8") as f:
                for entry in parse_list_lines(f, require_label=False, source=list_path):
                    name = entry.image
                    self.file_list.append(ListEntry(
                        os.path.join(voc, "JPEGImages", name + ".jpg"),
                        os.path.join(voc, label_dir, name + ".png"), list_path, entry.line))
