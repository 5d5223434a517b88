"""Check a dataset's files before a long run, instead of finding a bad one hours into it.

Two levels:

- :func:`check_files_exist` -- every listed file exists (a stat per file, seconds for
  20k-line lists); cheap enough to run before every training run.
- :func:`check_dataset` / :func:`check_config` -- read and decode every listed image and
  label once (in worker processes), and report missing, undecodable or truncated files,
  image/label size mismatches, label values outside the classes (after ``label_remap``),
  class pixel frequencies, and training images smaller than the train crop. This is what
  ``tools/check_dataset.py`` prints.

Every problem is a :class:`~segq.data.errors.DataError` naming the file, the list file and
its line.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from .dataset import size_mismatch
from .errors import DataError, MissingFileError
from .io import read_image, read_label
from .workers import ordered_map

logger = logging.getLogger("segq")

SPLITS = {"train": ("train",), "val": ("val",), "all": ("train", "val")}


# ---------------------------------------------------------------- cheap: files exist
def missing_files(dataset) -> list[MissingFileError]:
    """A :class:`MissingFileError` for every listed image or label that does not exist."""
    if not getattr(dataset, "reads_files", True):
        return []
    missing = []
    for index, (img_path, label_path) in enumerate(dataset.file_list):
        for what, path in (("image", img_path), ("label", label_path)):
            if path is not None and not os.path.isfile(path):
                e = MissingFileError(f"{what} file not found: {path}", path)
                missing.append(e.locate(*dataset.list_location(index)))
    return missing


def check_files_exist(dataset, show: int = 3) -> None:
    """Raise :class:`MissingFileError` naming the first ``show`` missing files (and how
    many are missing in all) if any listed file is missing.

    With ``skip_bad_files`` the missing files only get a warning (training skips them),
    unless no sample is left.
    """
    missing = missing_files(dataset)
    if not missing:
        return
    listed = f"{len(missing)} of the files listed for {len(dataset)} {dataset.mode} samples"
    shown = "; ".join(str(e) for e in missing[:show])
    more = f"; and {len(missing) - show} more" if len(missing) > show else ""
    bad_samples = {(e.list_path, e.line, e.path) for e in missing}
    if getattr(dataset, "skip_bad_files", False) and len(bad_samples) < len(dataset):
        logger.warning(f"skip_bad_files: {listed} are missing and will be skipped: "
                       f"{shown}{more}")
        return
    raise MissingFileError(f"{listed} are missing: {shown}{more}; tools/check_dataset.py "
                           f"lists every problem", missing[0].path)


# ---------------------------------------------------------------- full check
@dataclass
class SampleCheck:
    """What reading one listed pair found (computed in a worker process)."""
    index: int
    image_size: Optional[tuple[int, int]]  # (w, h); None if the image is unreadable
    problems: list[DataError]
    class_pixels: Optional[np.ndarray]     # per class id, after label_remap
    ignore_pixels: int = 0


def check_sample(dataset, index: int) -> SampleCheck:
    """Read pair ``index`` of ``dataset`` and collect every problem, not just the first."""
    img_path, label_path = dataset.file_list[index]
    where = dataset.list_location(index)
    problems: list[DataError] = []
    img = label = None
    try:
        img = read_image(img_path)
    except DataError as e:
        problems.append(e.locate(*where))
    if label_path is not None:
        try:
            label = read_label(label_path)
        except DataError as e:
            problems.append(e.locate(*where))
    if img is not None and label is not None and img.shape[:2] != label.shape:
        problems.append(size_mismatch(img_path, img.shape, label_path, label.shape)
                        .locate(*where))
    pixels, ignore = None, 0
    if label is not None:
        label = dataset.remap_label(label)
        try:
            dataset.check_label(label, label_path)
        except DataError as e:
            problems.append(e.locate(*where))
        hist = np.bincount(label.ravel())
        n = dataset.num_classes
        pixels = np.zeros(n, np.int64)
        pixels[:min(n, hist.size)] = hist[:n]
        ignore = int(hist[dataset.ignore_index]) if dataset.ignore_index < hist.size else 0
    size = None if img is None else (int(img.shape[1]), int(img.shape[0]))
    return SampleCheck(index, size, problems, pixels, ignore)


@dataclass
class DatasetReport:
    """The result of :func:`check_dataset` for one split; ``ok`` when nothing is wrong."""
    split: str
    dataset: str                      # the dataset's repr
    num_samples: int
    num_classes: int
    class_names: Optional[Sequence[str]] = None
    crop_size: Optional[tuple[int, int]] = None        # (w, h) of the train crop
    errors: list[DataError] = field(default_factory=list)
    small_images: list[tuple[str, tuple[int, int], str]] = field(default_factory=list)
    class_pixels: Optional[np.ndarray] = None
    ignore_pixels: int = 0
    seconds: float = 0.0
    note: str = ""                    # why nothing was checked, if so

    @property
    def ok(self) -> bool:
        return not self.errors

    def problem_lines(self) -> list[str]:
        return [f"{self.split}: {e}" for e in self.errors]

    def warning_lines(self, show: int = 10) -> list[str]:
        lines = []
        if self.small_images:
            cw, ch = self.crop_size
            for path, (w, h), where in self.small_images[:show]:
                lines.append(f"{self.split}: image {path} is {w}x{h} (w x h), smaller than the "
                             f"train crop {cw}x{ch} (padded with ignore){where}")
            if len(self.small_images) > show:
                lines.append(f"{self.split}: ... and {len(self.small_images) - show} more "
                             f"images smaller than the crop")
        if self.class_pixels is not None and self.class_pixels.sum():
            empty = [self._class_name(c) for c in np.flatnonzero(self.class_pixels == 0)]
            if empty:
                lines.append(f"{self.split}: no pixel of class {', '.join(empty)}")
        return lines

    def _class_name(self, c: int) -> str:
        names = self.class_names
        return f"{c} {names[c]}" if names and c < len(names) else str(c)

    def frequency_line(self) -> str:
        total = int(self.class_pixels.sum()) + self.ignore_pixels
        if not total:
            return f"{self.split}: no labelled pixels read"
        shares = ", ".join(f"{self._class_name(c)} {100 * p / total:.2f}%"
                           for c, p in enumerate(self.class_pixels))
        return (f"{self.split}: class pixel shares: {shares}; ignore "
                f"{100 * self.ignore_pixels / total:.2f}% (of {total} pixels)")

    def summary(self) -> str:
        if self.note:
            return f"{self.split}: {self.dataset}: {self.note}"
        files = len({e.path for e in self.errors})
        verdict = (f"{len(self.errors)} problem(s) in {files} file(s)" if self.errors
                   else "no problems")
        small = f", {len(self.small_images)} image(s) smaller than the crop" \
            if self.small_images else ""
        return (f"{self.split}: {self.num_samples} samples of {self.dataset} read in "
                f"{self.seconds:.1f}s: {verdict}{small}")

    def lines(self) -> list[str]:
        """Everything to print: problems, warnings, class frequencies, then the summary."""
        out = self.problem_lines() + self.warning_lines()
        if self.class_pixels is not None:
            out.append(self.frequency_line())
        return out + [self.summary()]


def train_crop_size(dataset) -> Optional[tuple[int, int]]:
    """``crop_size`` (w, h) of the dataset's first RandomPaddingCrop, if it has one."""
    for t in getattr(getattr(dataset, "transforms", None), "transforms", ()):
        if type(t).__name__ == "RandomPaddingCrop":
            return tuple(t.crop_size)
    return None


def _progress(results: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    from tqdm import tqdm

    # disable=None: a bar on a terminal only, so logs and pipes stay clean
    return tqdm(results, total=total, desc=desc, unit="file", dynamic_ncols=True,
                disable=None if enabled else True)


def check_dataset(dataset, split: str = "train", num_workers: int = 0,
                  crop_size: Optional[tuple[int, int]] = None,
                  progress: bool = True) -> DatasetReport:
    """Read every listed image and label of ``dataset`` once (``num_workers`` processes)
    and return what is wrong with them; nothing is raised for bad files."""
    report = DatasetReport(split, repr(dataset), len(dataset), dataset.num_classes,
                           getattr(dataset, "CLASSES", None), crop_size)
    if not getattr(dataset, "reads_files", True):
        report.note = "generated samples, no files to check"
        return report
    t0 = time.perf_counter()
    check = functools.partial(check_sample, dataset)
    indices = range(len(dataset))
    results = (ordered_map(check, indices, num_workers) if num_workers > 0
               else map(check, indices))
    report.class_pixels = np.zeros(dataset.num_classes, np.int64)
    for r in _progress(results, len(dataset), f"checking {split}", progress):
        report.errors.extend(r.problems)
        if r.class_pixels is not None:
            report.class_pixels += r.class_pixels
            report.ignore_pixels += r.ignore_pixels
        if crop_size and r.image_size and (r.image_size[0] < crop_size[0]
                                           or r.image_size[1] < crop_size[1]):
            list_path, line = dataset.list_location(r.index)
            where = f" (listed in {list_path}, line {line})" if list_path else ""
            report.small_images.append((dataset.file_list[r.index][0], r.image_size, where))
    report.seconds = time.perf_counter() - t0
    return report


def check_config(cfg, split: str = "train", num_workers: int = 0,
                 progress: bool = True) -> list[DatasetReport]:
    """:func:`check_dataset` for the config's ``train_dataset`` and/or ``val_dataset``
    (``split``: train, val or all); training images are compared with the train crop."""
    from ..registry import DATASETS

    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    reports = []
    for name in SPLITS[split]:
        section = getattr(cfg, f"{name}_dataset", None)
        if section is None:
            if split != "all":
                raise ValueError(f"the config has no {name}_dataset section")
            continue
        dataset = DATASETS.build(section.to_dict())
        crop = train_crop_size(dataset) if name == "train" else None
        reports.append(check_dataset(dataset, name, num_workers, crop, progress))
    return reports
