"""Predict masks for images on disk and save colour-mapped masks and overlays."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..config import SegConfig

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def color_map(num_classes: int) -> np.ndarray:
    """The Pascal VOC palette (bits of the class id spread over R, G, B): ``[num_classes, 3]`` RGB."""
    cmap = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for cls in range(num_classes):
        c, r, g, b = cls, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        cmap[cls] = (r, g, b)
    return cmap


def colorize(pred: np.ndarray, num_classes: int) -> np.ndarray:
    """HxW class ids -> HxWx3 RGB."""
    return color_map(num_classes)[np.clip(pred, 0, num_classes - 1)]


OVERLAY_ALPHA = 0.5


def blend(rgb: np.ndarray, colors: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The overlay written beside each mask: ``colors`` over the image at ``alpha``."""
    return cv2.addWeighted(rgb, 1 - alpha, colors, alpha, 0)


def list_images(image_path: str | Path) -> list[Path]:
    path = Path(image_path)
    if path.is_file():
        return [path]
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        return images
    raise FileNotFoundError(f"image path not found: {path}")


def predict_images(cfg: SegConfig, model_path: str | None, image_path: str,
                   save_dir: str) -> list[Path]:
    """Write ``<name>_mask.png`` (palette colours) and ``<name>_overlay.png`` for each image."""
    from ..builders import num_classes_of
    from ..data.io import read_image
    from ..data.transforms import build_transforms, transform_image
    from .evaluator import dygraph_predictor
    from .workflows import build_model_for, deploy_transforms

    images = list_images(image_path)
    model = build_model_for(cfg, model_path)
    model.eval()
    predict = dygraph_predictor(model, cfg.test_config)
    transforms = build_transforms(deploy_transforms(cfg))
    num_classes = num_classes_of(cfg)
    out_dir = Path(save_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        rgb = read_image(path)
        pred = predict(transform_image(transforms, rgb, str(path)))
        mask = colorize(pred, num_classes)
        overlay = blend(rgb, mask)
        for suffix, img in (("mask", mask), ("overlay", overlay)):
            target = out_dir / f"{path.stem}_{suffix}.png"
            cv2.imwrite(str(target), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            written.append(target)
    return written
