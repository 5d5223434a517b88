"""Cityscapes fine annotations with the 19 training ids."""
from __future__ import annotations

import glob
import os
import textwrap
from typing import Any

from ..registry import DATASETS
from .dataset import SegDataset
from .download import ensure_dataset

LAYOUT = """\
    dataset_root/
        leftImg8bit/{train,val,test}/<city>/<name>_leftImg8bit.png
        gtFine/{train,val,test}/<city>/<name>_gtFine_labelTrainIds.png
    (the *_labelTrainIds.png files come from cityscapesscripts' createTrainIdLabelImgs)"""
_IMG_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelTrainIds.png"


@DATASETS.register
class Cityscapes(SegDataset):
    __doc__ = """Cityscapes (fine): 19 classes, 255 ignored; files found by glob, sorted.

    Layout::

""" + textwrap.indent(LAYOUT, "    ")

    NUM_CLASSES = 19
    CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
               "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
               "truck", "bus", "train", "motorcycle", "bicycle")

    def __init__(self, dataset_root: str, mode: str = "train", transforms: Any = (),
                 skip_bad_files: bool = False):
        super().__init__(self.NUM_CLASSES, mode, transforms, skip_bad_files=skip_bad_files)
        # Cityscapes needs a login to download, so there is no download option
        self.dataset_root = ensure_dataset(dataset_root, "Cityscapes", LAYOUT)
        img_dir = os.path.join(self.dataset_root, "leftImg8bit", self.mode)
        label_dir = os.path.join(self.dataset_root, "gtFine", self.mode)
        images = sorted(glob.glob(os.path.join(img_dir, "*", "*" + _IMG_SUFFIX)))
        if not images:
            raise FileNotFoundError(f"no *{_IMG_SUFFIX} images under {img_dir}; expected:\n"
                                    f"{LAYOUT}")
        for img in images:
            city = os.path.basename(os.path.dirname(img))
            stem = os.path.basename(img)[:-len(_IMG_SUFFIX)]
            label = os.path.join(label_dir, city, stem + _LABEL_SUFFIX)
            if not os.path.isfile(label):
                if self.mode != "test":
                    raise FileNotFoundError(
                        f"label {label} for image {img} not found; create the train-id "
                        f"labels with cityscapesscripts' createTrainIdLabelImgs")
                label = None
            self.file_list.append((img, label))
