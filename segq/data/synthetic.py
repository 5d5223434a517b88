"""Procedural road-like scenes that need no files: for tests, smoke runs and quick QAT checks.

Each sample is drawn from ``default_rng((seed, mode stream, index))``, so it is the same on
every machine and train/val/test never share a scene. With 4+ classes a scene has
background (0), a sky band (1) with a wavy horizon, a road (2) narrowing to a vanishing
point, and rectangles/ellipses of classes 3.. on top; with 2-3 classes only objects of
classes 1.. on background. Classes come in pairs of similar colour (0/1, 2/3, ...) told
apart by their stripe texture and by where they appear, and every scene adds per-class colour
jitter, global illumination and pixel noise: a small CNN learns it in a few hundred
iterations, but not from colour alone. A few small patches are labelled ``ignore_index``.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import cv2
import numpy as np

from ..registry import DATASETS
from .dataset import SegDataset

_STREAM = {"train": 0, "val": 1, "test": 2}
_PALETTE_SEED = 7  # fixed, so class colours do not depend on the dataset seed


@DATASETS.register
class SyntheticScenes(SegDataset):
    """Deterministic synthetic scenes; ``image_size`` is ``(h, w)``."""

    NUM_CLASSES = 4  # the default, for builders that ask the class; a num_classes kwarg wins
    reads_files = False  # file_list holds names only; samples are drawn, not read
    NOISE_STD = 18.0
    JITTER_STD = 20.0
    TEXTURE_AMP = 18.0

    def __init__(self, num_samples: int = 64, image_size: Sequence[int] = (96, 128),
                 num_classes: int = 4, mode: str = "train", transforms: Any = (),
                 seed: int = 0, ignore_index: int = 255):
        super().__init__(num_classes, mode, transforms, ignore_index)
        if not isinstance(num_samples, numbers.Integral) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2
                or not all(isinstance(v, numbers.Integral) and v >= 16 for v in image_size)):
            raise ValueError(f"image_size must be 2 ints (h, w), each >= 16, got {image_size!r}")
        if not 2 <= num_classes <= 254 or not 0 <= ignore_index <= 255:
            raise ValueError(f"SyntheticScenes needs 2 <= num_classes <= 254 and ignore_index "
                             f"in [0, 255] (8-bit labels), got {num_classes}, {ignore_index}")
        if not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.num_samples = int(num_samples)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.seed = int(seed)
        self.file_list = [(f"synthetic/{self.mode}/{i:06d}.png",
                           f"synthetic/{self.mode}/{i:06d}_label.png")
                          for i in range(self.num_samples)]
        self._palette, self._texture = self._class_looks(self.num_classes)
        h, w = self.image_size
        self._yy, self._xx = np.mgrid[0:h, 0:w].astype(np.float32)

    @staticmethod
    def _class_looks(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Colours (pairs close together) and stripe (angle, period) per class."""
        rng = np.random.default_rng(_PALETTE_SEED)
        pair_colours = rng.uniform(50, 205, size=((num_classes + 1) // 2, 3))
        offsets = rng.uniform(-12, 12, size=(num_classes, 3))
        palette = pair_colours[np.arange(num_classes) // 2] + offsets
        c = np.arange(num_classes)
        angle = (c * 0.9) % np.pi
        period = 3.0 + 3.0 * (c % 4)
        return palette.astype(np.float32), np.stack([angle, period], 1).astype(np.float32)

    def _layout(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.image_size
        label = np.zeros((h, w), np.uint8)
        if self.num_classes >= 4:
            horizon = h * rng.uniform(0.25, 0.45)
            wave = horizon + h * 0.05 * np.sin(
                2 * np.pi * self._xx[0] / (w * rng.uniform(0.3, 1.0)) + rng.uniform(0, 6.3))
            label[self._yy < wave[None, :]] = 1
            top_y = horizon + h * rng.uniform(0.05, 0.15)
            vx = w * rng.uniform(0.35, 0.65)
            road = np.array([[vx - w * 0.04, top_y], [vx + w * 0.04, top_y],
                             [w * rng.uniform(0.8, 1.3), h], [w * rng.uniform(-0.3, 0.2), h]])
            cv2.fillPoly(label, [np.round(road).astype(np.int32)], 2)
            object_classes = np.arange(3, self.num_classes)
        else:
            object_classes = np.arange(1, self.num_classes)
        for _ in range(int(rng.integers(3, 9))):
            c = int(rng.choice(object_classes))
            cx, cy = w * rng.uniform(0, 1), h * rng.uniform(0.2, 1.0)
            ax, ay = w * rng.uniform(0.03, 0.14), h * rng.uniform(0.03, 0.16)
            if rng.random() < 0.5:
                cv2.rectangle(label, (int(cx - ax), int(cy - ay)), (int(cx + ax), int(cy + ay)),
                              c, thickness=-1)
            else:
                cv2.ellipse(label, (int(cx), int(cy)), (int(ax), int(ay)),
                            float(rng.uniform(0, 180)), 0, 360, c, thickness=-1)
        return label

    def _render(self, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = np.empty(label.shape + (3,), np.float32)
        for c in np.unique(label):
            m = label == c
            colour = self._palette[c] + rng.normal(0, self.JITTER_STD, 3)
            angle, period = self._texture[c]
            phase = rng.uniform(0, 2 * np.pi)
            t = (self._xx[m] * np.cos(angle) + self._yy[m] * np.sin(angle)) / period
            img[m] = colour + (self.TEXTURE_AMP * np.sin(2 * np.pi * t + phase))[:, None]
        img *= rng.uniform(0.8, 1.2)
        img += rng.normal(0, self.NOISE_STD, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def load(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, _STREAM[self.mode], index))
        label = self._layout(rng)
        img = self._render(label, rng)
        h, w = self.image_size
        for _ in range(int(rng.integers(1, 4))):  # a few unlabelled patches
            y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
            label[y:y + int(rng.integers(2, 5)), x:x + int(rng.integers(2, 5))] = \
                self.ignore_index
        img_path, label_path = self.file_list[index]
        return {"img": img, "label": label, "img_path": img_path, "label_path": label_path,
                "trans_info": []}
