"""The images a prediction CLI is pointed at (predict.py, deploy/python/infer.py): list a file
or a folder, read them one at a time, write a mask per image, and either stop at the first
unreadable image with one line saying what was already written, or skip it and say so."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from ..data.io import read_image
from .masks import Prediction, write_masks
from .visualize import IMAGE_SUFFIXES

SKIP_HINT = "--skip_bad skips unreadable images"


class BadImageError(ValueError):
    """An image file that cannot be read or decoded (one line naming it)."""


@dataclass(frozen=True)
class ImageList:
    """Image files to predict, sorted; ``root`` is the folder given (masks mirror the layout
    below it), ``None`` for a single file."""

    paths: list[Path]
    root: Path | None = None
    excluded: int = 0   # image files under --save_dir inside --image_path, not read

    @property
    def sub_folders(self) -> int:
        """How many folders below ``root`` hold images."""
        if self.root is None:
            return 0
        return len({p.parent for p in self.paths} - {self.root})


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def list_images(image_path: str | os.PathLike,
                exclude: str | os.PathLike | None = None) -> ImageList:
    """``image_path`` is an image file or a folder, searched with its sub-folders (as
    PaddleSeg's infer.py). Files under ``exclude`` (the output folder) are left out: when
    it sits inside ``image_path``, a second run would otherwise predict the first run's
    masks and overlays."""
    path = Path(image_path)
    if path.is_file():
        return ImageList([path])
    if not path.is_dir():
        raise FileNotFoundError(f"image path not found: {path}")
    found = sorted(p for p in path.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    kept = found
    if exclude is not None and _inside(Path(exclude), path):
        kept = [p for p in found if not _inside(p, Path(exclude))]
    if not kept:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path} "
                                f"or its sub-folders")
    return ImageList(kept, path, len(found) - len(kept))


def read_images(paths: Iterable[str | os.PathLike],
                skipped: list[tuple[Path, str]] | None = None
                ) -> Iterator[tuple[Path, np.ndarray]]:
    """``(path, HxWx3 uint8 RGB)`` per file, read lazily. An unreadable or undecodable file
    raises :class:`BadImageError`, or, when a ``skipped`` list is given, is appended to it
    as ``(path, reason)`` and passed over."""
    for path in map(Path, paths):
        try:
            image = read_image(path)
        # read_image raises only for the file's own problems: missing or unreadable (OSError
        # or segq's data errors, which are ValueErrors), corrupt or truncated (ValueError)
        except (OSError, ValueError, cv2.error) as e:
            if skipped is None:
                raise BadImageError(str(e)) from e
            skipped.append((path, str(e)))
            continue
        yield path, image


# (image paths, skipped list or None) -> predictions in order (Predictor.predict_files)
PredictFiles = Callable[[list[Path], "list[tuple[Path, str]] | None"], Iterable[Prediction]]


@dataclass
class WriteReport:
    images: ImageList
    save_dir: Path
    written: int = 0                                   # images with a mask and an overlay
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def name(self, path: Path) -> str:
        root = self.images.root
        return str(path.relative_to(root)) if root is not None else str(path)

    def skipped_line(self) -> str:
        """One line: how many images were skipped, and which."""
        names = ", ".join(self.name(p) for p, _ in self.skipped)
        return (f"skipped {len(self.skipped)} of {len(self.images.paths)} images that could "
                f"not be read: {names}")


def write_predictions(predict_files: PredictFiles, images: ImageList,
                      save_dir: str | os.PathLike, skip_bad: bool = False) -> WriteReport:
    """Predict ``images`` and write ``<stem>_mask.png`` and ``<stem>_overlay.png`` for each
    under ``save_dir`` (sub-folders mirrored, so equal names never overwrite each other).

    Without ``skip_bad`` the first unreadable image stops the run with a
    :class:`BadImageError` that names it and says how many masks were already written;
    with it, unreadable images are listed in the report, and it is an error only if no
    image could be read."""
    report = WriteReport(images, Path(save_dir))
    skipped = report.skipped if skip_bad else None
    try:
        for _ in write_masks(predict_files(images.paths, skipped), save_dir, images.root):
            report.written += 1
    except BadImageError as e:
        raise BadImageError(f"{e}; stopped after writing {report.written} of "
                            f"{len(images.paths)} masks to {save_dir} ({SKIP_HINT})") from e
    if report.skipped and report.written == 0:
        raise BadImageError(f"none of the {len(images.paths)} images could be read, nothing "
                            f"written to {save_dir}: first {report.skipped[0][1]}")
    return report


def summary_lines(report: WriteReport) -> tuple[list[str], list[str]]:
    """(stdout lines, stderr lines) that end a prediction run: what was written, and each
    skipped image with its reason followed by one line listing them all."""
    images = report.images
    where = f"{report.written} masks and overlays in {report.save_dir}"
    if images.sub_folders:
        where += f" ({images.sub_folders} sub-folders mirrored)"
    out = [f"{len(images.paths)} images, {where}"]
    if images.excluded:
        out.append(f"not read: {images.excluded} image files under the output folder "
                   f"{report.save_dir}, which lies inside {images.root}")
    err = [f"skipped {report.name(p)}: {reason}" for p, reason in report.skipped]
    if report.skipped:
        err.append(report.skipped_line())
    return out, err
