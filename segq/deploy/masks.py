"""Write predictions as palette PNG masks and colour overlays."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import cv2
import numpy as np
from PIL import Image

from .visualize import blend, color_map, colorize

PALETTE_SIZE = 256   # a palette PNG holds 8-bit indices


class Prediction(NamedTuple):
    path: Path | None       # the image file, None for an in-memory image
    image: np.ndarray       # HxWx3 uint8 RGB as given
    label_map: np.ndarray   # HxW int32 class ids at the image's size


def _stem_for(path: Path | None, index: int, image_root: Path | None) -> Path:
    """``<sub/dirs>/<name>`` relative to ``image_root`` (so equal names in different
    folders do not overwrite each other); ``image_<index>`` for in-memory images."""
    if path is None:
        return Path(f"image_{index}")
    if image_root is not None:
        try:
            return path.relative_to(image_root).with_suffix("")
        except ValueError:
            pass
    return Path(path.stem)


def save_masks(predictions: Iterable[Prediction], save_dir: str | os.PathLike,
               image_root: str | os.PathLike | None = None) -> list[Path]:
    """For each prediction write ``<stem>_mask.png`` (palette PNG: pixel values are the class
    ids, colours the VOC palette) and ``<stem>_overlay.png`` (the image blended half and half
    with the colours); returns the files written."""
    return [f for pair in write_masks(predictions, save_dir, image_root) for f in pair]


def write_masks(predictions: Iterable[Prediction], save_dir: str | os.PathLike,
                image_root: str | os.PathLike | None = None) -> Iterator[tuple[Path, Path]]:
    """:func:`save_masks` one prediction at a time, yielding ``(mask, overlay)`` as each pair
    is written, so a caller knows how far a run got when a later image fails."""
    save_dir = Path(save_dir)
    root = Path(image_root) if image_root is not None else None
    palette = color_map(PALETTE_SIZE).reshape(-1).tolist()
    for i, pred in enumerate(predictions):
        yield _write_one(pred, save_dir / _stem_for(pred.path, i, root), palette, i)


def _write_one(pred: Prediction, stem: Path, palette: list[int], index: int
               ) -> tuple[Path, Path]:
    labels = pred.label_map
    if labels.size and (labels.min() < 0 or labels.max() >= PALETTE_SIZE):
        raise ValueError(f"{pred.path or f'image {index}'}: class ids "
                         f"{int(labels.min())}..{int(labels.max())} do not fit a "
                         f"{PALETTE_SIZE}-colour palette PNG")
    stem.parent.mkdir(parents=True, exist_ok=True)
    mask_path = stem.parent / f"{stem.name}_mask.png"
    mask = Image.fromarray(labels.astype(np.uint8))  # 2-D uint8 -> mode "L"
    mask.putpalette(palette)  # turns the "L" image into a "P" (palette) image
    mask.save(mask_path)
    overlay = blend(pred.image, colorize(labels, PALETTE_SIZE))
    overlay_path = stem.parent / f"{stem.name}_overlay.png"
    ok, buf = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the overlay for {overlay_path}")
    buf.tofile(str(overlay_path))  # tofile, not imwrite: non-ASCII paths work
    return mask_path, overlay_path
