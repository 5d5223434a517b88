"""Segmentation datasets: the shared ``__getitem__`` and the generic list-file ``Dataset``.

``dataset[i]`` or ``dataset[(i, seed)]`` returns the sample dict of docs/CONTRACTS.md with
``img`` float32 CHW and ``label`` int64 HW. The transforms' rng is ``default_rng(seed)``
(``default_rng(i)`` without a seed), so the loader decides every sample's augmentation and
a resumed run sees exactly the samples an uninterrupted one would.

A file that cannot be used (missing, undecodable, truncated, wrong size, label values out of
range) raises :class:`~segq.data.errors.DataError` naming the file and its list line. With
``skip_bad_files`` the sample is replaced by the next good one instead (same augmentation
seed), so a batch stays a pure function of its keys; the sample then carries the errors
under ``"skipped"`` for the loader to report.
"""
from __future__ import annotations

import numbers
import os
from typing import Any, Iterable, Mapping, Optional

import cv2
import numpy as np

from ..registry import DATASETS
from .errors import DataError
from .io import read_image, read_label
from .list_file import read_list_file
from .transforms import Compose, build_transforms

MODES = ("train", "val", "test")


def build_label_lut(label_remap: Mapping[int, int] | None) -> np.ndarray | None:
    """A uint16 lookup table over all 16-bit ids for ``label_remap`` (old -> new id; ids not
    in the mapping are unchanged)."""
    if not label_remap:
        return None
    for k, v in label_remap.items():
        for name, x in (("key", k), ("value", v)):
            if not isinstance(x, numbers.Integral) or isinstance(x, bool) or not 0 <= x <= 65535:
                raise ValueError(f"label_remap {name} {x!r} (in {k!r}: {v!r}) must be an int "
                                 f"in [0, 65535]")
    lut = np.arange(65536, dtype=np.uint16)
    for k, v in label_remap.items():
        lut[int(k)] = int(v)
    return lut


def size_mismatch(img_path: str, img_shape: tuple, label_path: str,
                  label_shape: tuple) -> DataError:
    """The error for an image and label of different sizes (shapes are numpy's, h first)."""
    return DataError(f"image and label sizes differ: {img_path} is {img_shape[1]}x"
                     f"{img_shape[0]} (w x h) but {label_path} is {label_shape[1]}x"
                     f"{label_shape[0]}", label_path)


def _values_text(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


class SegDataset:
    """Base class: subclasses fill ``file_list`` or override :meth:`load`.

    Handles key parsing, label remapping and checking, the transforms and the final
    layout (img float32 CHW, label int64 HW).
    """

    # False for datasets whose ``file_list`` names no real files (generated samples):
    # the file checks of segq.data.check skip them
    reads_files = True

    def __init__(self, num_classes: int, mode: str = "train", transforms: Any = (),
                 ignore_index: int = 255, label_remap: Mapping[int, int] | None = None,
                 modes: Iterable[str] = MODES, skip_bad_files: bool = False):
        if not isinstance(skip_bad_files, bool):
            raise ValueError(f"skip_bad_files must be true or false, got {skip_bad_files!r}")
        if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not isinstance(ignore_index, numbers.Integral):
            raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a valid class id "
                             f"(num_classes={num_classes}); use a value >= num_classes, "
                             f"e.g. 255")
        modes = tuple(modes)
        mode = str(mode).lower()
        if mode not in modes:
            raise ValueError(f"mode must be one of {modes}, got {mode!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.mode = mode
        self.label_remap = dict(label_remap) if label_remap else None
        self._lut = build_label_lut(self.label_remap)
        # 8-bit labels stay 8-bit when every remapped 8-bit id still fits
        self._lut8 = (self._lut[:256].astype(np.uint8)
                      if self._lut is not None and self._lut[:256].max() < 256 else None)
        # padding a label with anything but the ignore index would invent class pixels
        self.transforms: Compose = build_transforms(
            transforms, label_padding_value=self.ignore_index, ignore_index=self.ignore_index)
        self.file_list: list[tuple[str, Optional[str]]] = []
        self.skip_bad_files = skip_bad_files
        # index -> its DataError, so a known-bad file is not read again (per process)
        self._bad: dict[int, DataError] = {}

    # ------------------------------------------------------------------ loading
    def load(self, index: int) -> dict:
        """The raw sample: ``img`` HWC uint8 RGB, ``label`` HW uint8/uint16 (if any), paths."""
        img_path, label_path = self.file_list[index]
        sample = {"img": read_image(img_path), "img_path": img_path, "label_path": label_path,
                  "trans_info": []}
        if label_path is not None:
            label = read_label(label_path)
            if label.shape != sample["img"].shape[:2]:
                raise size_mismatch(img_path, sample["img"].shape, label_path, label.shape)
            sample["label"] = label
        return sample

    def remap_label(self, label: np.ndarray) -> np.ndarray:
        """``label`` through ``label_remap`` (unchanged without one)."""
        if self._lut8 is not None and label.dtype == np.uint8:
            return cv2.LUT(label, self._lut8)  # ~7x faster than numpy fancy indexing
        if self._lut is not None:
            return self._lut[label]
        return label

    def remap_and_check(self, label: np.ndarray, label_path: Optional[str]) -> np.ndarray:
        label = self.remap_label(label)
        self.check_label(label, label_path)
        return label

    def check_label(self, label: np.ndarray, label_path: Optional[str]) -> None:
        """Raise :class:`DataError` if the (remapped) ``label`` holds a value that is
        neither a class id nor ``ignore_index``."""
        # cheap test first: most labels pass `max < num_classes` or hold only the ignore id
        if label.max() >= self.num_classes:
            high = np.unique(label[label >= self.num_classes])
            bad = high[high != self.ignore_index]
            if bad.size:
                remap = f" after label_remap {self.label_remap}" if self.label_remap else ""
                raise DataError(
                    f"label file {label_path} has values {_values_text(bad)}{remap}; "
                    f"expected class ids 0..{self.num_classes - 1} or ignore_index "
                    f"{self.ignore_index} (set num_classes, ignore_index or label_remap)",
                    label_path)

    def list_location(self, index: int) -> tuple[Optional[str], Optional[int]]:
        """The list file and 1-based line sample ``index`` came from (``None`` if unknown)."""
        entry = self.file_list[index] if 0 <= index < len(self.file_list) else None
        return getattr(entry, "list_path", None), getattr(entry, "line", None)

    def load_checked(self, index: int) -> dict:
        """:meth:`load` plus the remapped, checked label (``ori_label`` outside training);
        any problem with the files raises :class:`DataError` located at the list line."""
        try:
            sample = self.load(index)
            if sample.get("label") is not None:
                sample["label"] = self.remap_and_check(sample["label"], sample.get("label_path"))
        except DataError as e:
            raise e.locate(*self.list_location(index))
        if sample.get("label") is not None and self.mode != "train":
            # evaluation compares predictions mapped back through trans_info with the
            # label at its original size, as PaddleSeg does
            sample["ori_label"] = sample["label"].astype(np.int64)
        return sample

    def _first_good(self, index: int) -> tuple[dict, list[DataError]]:
        """Sample ``index``, or with ``skip_bad_files`` the next good one after it (cyclic)."""
        if not self.skip_bad_files:
            return self.load_checked(index), []
        skipped = []
        for offset in range(len(self)):
            i = (index + offset) % len(self)
            if i in self._bad:
                skipped.append(self._bad[i])
                continue
            try:
                return self.load_checked(i), skipped
            except DataError as e:
                self._bad[i] = e
                skipped.append(e)
        raise DataError(f"skip_bad_files: all {len(self)} samples are bad; the first: "
                        f"{skipped[0]}", skipped[0].path)

    def __len__(self) -> int:
        return len(self.file_list)

    def _parse_key(self, key: Any) -> tuple[int, int]:
        if isinstance(key, (tuple, list)) and len(key) == 2:
            index, seed = key
        else:
            index, seed = key, None
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(f"dataset key must be an int or (int, seed), got {key!r}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        index = int(index) % n
        return index, (index if seed is None else int(seed))

    def __getitem__(self, key: Any) -> dict:
        index, seed = self._parse_key(key)
        sample, skipped = self._first_good(index)
        # the replacement keeps the key's seed: the batch still depends on its keys alone
        sample = self.transforms(sample, np.random.default_rng(seed))
        if skipped:
            sample["skipped"] = skipped
        img = np.asarray(sample["img"])
        if img.ndim == 2:
            img = img[:, :, None]
        sample["img"] = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
        if sample.get("label") is not None:
            sample["label"] = np.ascontiguousarray(sample["label"], dtype=np.int64)
        return sample

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(mode={self.mode!r}, {len(self)} samples, "
                f"num_classes={self.num_classes}, ignore_index={self.ignore_index})")


def resolve_list_path(path: str, dataset_root: str) -> str:
    """A list path relative to ``dataset_root`` (or absolute). PaddleSeg configs give list
    paths relative to the working directory, so that is tried second."""
    if os.path.isabs(path):
        return path
    under_root = os.path.join(dataset_root, path)
    if os.path.exists(under_root) or not os.path.exists(path):
        return under_root
    return path


@DATASETS.register
class Dataset(SegDataset):
    """A dataset described by PaddleSeg-style list files.

    Layout::

        dataset_root/
            train.txt        image_path label_path   (paths relative to dataset_root)
            val.txt
            test.txt         image_path [label_path]
            ...images and labels wherever the lists point

    ``train_path``/``val_path``/``test_path`` are relative to ``dataset_root`` unless absolute.
    ``label_remap`` (old id -> new id) is applied before the labels are checked against
    ``num_classes``, e.g. ``{11: 255}`` to turn a void class into the ignore index.
    ``skip_bad_files: true`` replaces an unusable sample by the next good one and logs each
    skipped file, instead of stopping the run at the first (the default).
    """

    def __init__(self, dataset_root: str, num_classes: int, mode: str = "train",
                 transforms: Any = (), train_path: str | None = None,
                 val_path: str | None = None, test_path: str | None = None,
                 ignore_index: int = 255, label_remap: Mapping[int, int] | None = None,
                 separator: str = " ", img_channels: int = 3, skip_bad_files: bool = False):
        super().__init__(num_classes, mode, transforms, ignore_index, label_remap,
                         skip_bad_files=skip_bad_files)
        if img_channels != 3:
            raise ValueError(f"img_channels={img_channels} is not supported: images are read "
                             f"as 3-channel RGB")
        self.dataset_root = os.fspath(dataset_root)
        if not os.path.isdir(self.dataset_root):
            raise FileNotFoundError(f"dataset_root not found: {self.dataset_root}")
        list_path = {"train": train_path, "val": val_path, "test": test_path}[self.mode]
        if list_path is None:
            raise ValueError(f"mode is {self.mode!r} but {self.mode}_path is not set: give the "
                             f"list file of the {self.mode} split")
        self.list_path = resolve_list_path(os.fspath(list_path), self.dataset_root)
        self.file_list = read_list_file(self.list_path, self.dataset_root, separator,
                                        require_label=self.mode != "test")
        if not self.file_list:
            raise ValueError(f"list file {self.list_path} holds no samples")
