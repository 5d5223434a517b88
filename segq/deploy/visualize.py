"""Colour maps for label maps: the palette, colourised masks and overlays."""
from __future__ import annotations

import cv2
import numpy as np

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
