"""Calibration data for post-training quantization: unlabeled images, preprocessed exactly as
the deployed model's inputs are.

Sources, in the order a user reaches for them: a folder of images (any names, nested
folders), a PaddleSeg list file (its first column), the config's train split (the default),
or a folder of ``.npy`` tensors already in the model's input layout (CHW or 1CHW) for users
whose preprocessing lives outside segq. Every file is read and checked before anything is
written, so a bad folder fails in seconds with the file named.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class CalibrationError(ValueError):
    """Calibration data that cannot be used; the message names the file or the setting."""


@dataclass(frozen=True)
class CalibrationSource:
    calib_dir: str | None = None       # images or .npy files, searched recursively
    calib_list: str | None = None      # a PaddleSeg list file (image paths in column 1)
    calib_num: int = 256
    allow_overlap: bool = False        # allow calibration images that are also val images

    def describe(self) -> str:
        if self.calib_dir:
            return f"folder {self.calib_dir}"
        if self.calib_list:
            return f"list {self.calib_list}"
        return "the config's train split"


@dataclass
class CalibrationSet:
    """Preprocessed calibration inputs (float32 NCHW batches) and where they came from."""
    arrays: list[np.ndarray]           # one CHW array per image
    files: list[str]
    source: str
    load_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.arrays)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for i in range(0, len(self.arrays), batch_size):
            yield np.stack(self.arrays[i:i + batch_size])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self.arrays) // batch_size)


def _walk(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _list_images(list_file: Path, root: Path) -> list[Path]:
    from ..data.list_file import read_list_file

    return [Path(img) for img, _ in read_list_file(list_file, root, require_label=False)]


class DatasetImage:
    """Image ``index`` of a dataset (a built-in dataset may draw its images, not read them)."""

    suffix = ".dataset"

    def __init__(self, dataset, index: int):
        self.dataset, self.index = dataset, index
        entry = dataset.file_list[index] if getattr(dataset, "file_list", None) else None
        self.path = str(entry[0]) if entry else f"{type(dataset).__name__}[{index}]"

    def read(self) -> np.ndarray:
        return self.dataset.load(self.index)["img"]

    def __str__(self) -> str:
        return self.path

    def __fspath__(self) -> str:
        return self.path


def _train_split_images(cfg) -> list[DatasetImage]:
    from .. import builders

    dataset = builders.build_dataset(cfg.train_dataset, "train_dataset")
    return [DatasetImage(dataset, i) for i in range(len(dataset))]


def _val_images(cfg) -> set[str]:
    if cfg.val_dataset is None:
        return set()
    from .. import builders

    try:
        dataset = builders.build_dataset(cfg.val_dataset, "val_dataset")
    except (FileNotFoundError, ValueError):
        return set()  # no val set on this machine: nothing to overlap with
    return {os.path.realpath(entry[0]) for entry in getattr(dataset, "file_list", [])}


def candidate_files(cfg, source: CalibrationSource) -> list[Path]:
    """The files ``source`` names, in a fixed order (sorted paths, or the list's order)."""
    if source.calib_dir and source.calib_list:
        raise CalibrationError("give --calib_dir or --calib_list, not both")
    if source.calib_dir:
        folder = Path(source.calib_dir)
        if not folder.is_dir():
            raise CalibrationError(f"--calib_dir {folder}: not a directory")
        files = _walk(folder, IMAGE_SUFFIXES + (".npy",))
        kinds = {p.suffix.lower() == ".npy" for p in files}
        if len(kinds) > 1:
            raise CalibrationError(f"--calib_dir {folder} mixes .npy tensors and images; "
                                   f"use one kind")
    elif source.calib_list:
        files = _list_images(Path(source.calib_list), _list_root(cfg, source.calib_list))
    else:
        if cfg.train_dataset is None:
            raise CalibrationError("the config has no train_dataset: give --calib_dir or "
                                   "--calib_list")
        files = _train_split_images(cfg)
    if not files:
        raise CalibrationError(f"{source.describe()} holds no images "
                               f"({', '.join(IMAGE_SUFFIXES)}) or .npy files")
    return files


def _list_root(cfg, list_file: str) -> Path:
    """A list's paths are relative to the train dataset's root, as in the config's own
    lists; without one, to the list's folder."""
    section = cfg.train_dataset.to_dict() if cfg.train_dataset is not None else {}
    root = section.get("dataset_root")
    return Path(root) if root else Path(list_file).parent


def check_overlap(files: Sequence[Path], cfg, allow: bool) -> None:
    """Calibrating on evaluation images fits the scales to them and flatters the val mIoU."""
    if allow:
        return
    val = _val_images(cfg)
    shared = [str(p) for p in files if os.path.realpath(os.fspath(p)) in val]
    if shared:
        raise CalibrationError(
            f"{len(shared)} calibration image(s) are also in the val set (first: "
            f"{shared[0]}); calibrating on evaluation images overfits the scales to them. "
            f"Calibrate on other images, or pass --allow_calib_overlap")


def _load_npy(path: Path, channels: int) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise CalibrationError(f"cannot read tensor file {path}: {e}") from e
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != channels:
        raise CalibrationError(f"tensor file {path} has shape {list(arr.shape)}; expected "
                               f"[{channels}, H, W] or [1, {channels}, H, W] (the model's "
                               f"input layout, preprocessed)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _load_image(path, transforms) -> np.ndarray:
    from ..data.io import read_image

    img = path.read() if isinstance(path, DatasetImage) else read_image(path)
    sample = transforms({"img": img, "trans_info": []}, np.random.default_rng(0))
    img = np.asarray(sample["img"], dtype=np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def load_calibration_set(cfg, source: CalibrationSource, transform_specs: list[dict],
                         channels: int = 3, progress: bool = True) -> CalibrationSet:
    """Read, check and preprocess the first ``calib_num`` files of ``source``.

    ``transform_specs`` are the deployed model's preprocessing (deploy.yaml's transforms),
    applied to images; ``.npy`` tensors are taken as they are. Raises
    :class:`CalibrationError` naming the file for unreadable or wrongly shaped inputs, and
    when fewer files than ``calib_num`` exist."""
    from tqdm import tqdm

    from ..data.io import ImageDecodeError
    from ..data.transforms import build_transforms

    if source.calib_num < 1:
        raise CalibrationError(f"--calib_num must be >= 1, got {source.calib_num}")
    files = candidate_files(cfg, source)
    if len(files) < source.calib_num:
        raise CalibrationError(f"{source.describe()} holds {len(files)} file(s), fewer than "
                               f"--calib_num {source.calib_num}")
    files = files[:source.calib_num]
    check_overlap(files, cfg, source.allow_overlap)
    transforms = build_transforms(transform_specs)
    t0 = time.perf_counter()
    arrays = []
    # disable=None: a bar on a terminal only, so logs and pipes stay clean
    for path in tqdm(files, desc="reading calibration images",
                     disable=None if progress else True, leave=False):
        if path.suffix.lower() == ".npy":
            arrays.append(_load_npy(path, channels))
            continue
        try:
            arrays.append(_load_image(path, transforms))
        except (ImageDecodeError, FileNotFoundError, OSError) as e:
            raise CalibrationError(str(e)) from e
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        odd = next(f for f, a in zip(files, arrays) if a.shape != first)
        raise CalibrationError(
            f"calibration inputs differ in size ({files[0]} gives {list(first)}, {odd} gives "
            f"{list(next(a.shape for f, a in zip(files, arrays) if f == odd))}): use images "
            f"of one size, or add a Resize to export.transforms")
    return CalibrationSet(arrays, [str(f) for f in files], source.describe(),
                          time.perf_counter() - t0)


def export_calibration_batches(model_dir, source: CalibrationSource) -> list[np.ndarray]:
    """``source``'s images as batches of one, preprocessed as the export in ``model_dir``
    runs them (its deploy.yaml transforms), the default source being the train split of
    the config it was exported from (its config.yml)."""
    from pathlib import Path

    from ..config import load_config
    from ..deploy.deploy_file import load_deploy_info

    info = load_deploy_info(model_dir, require_onnx=False)
    config = Path(model_dir) / "config.yml"
    if not config.is_file():
        raise CalibrationError(f"{config} is missing: the export's calibration images come "
                               f"from its config's train split; give --calib_dir instead")
    calib = load_calibration_set(load_config(str(config)), source, info.transforms,
                                 progress=False)
    return list(calib.batches(1))
