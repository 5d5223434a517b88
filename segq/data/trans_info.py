"""Undo what the eval transforms recorded in ``trans_info`` (innermost first), so a
prediction lines up with the original image: scores are resized bilinearly before the arg
max, class ids can only be resized by nearest neighbour."""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F


def _steps(trans_info: Iterable | None):
    for op, (h, w) in reversed(list(trans_info or [])):
        if op not in ("resize", "padding"):
            raise ValueError(f"unknown trans_info op '{op}' (expected resize or padding)")
        yield op, int(h), int(w)


def restore_original_size(logits: paddle.Tensor, trans_info) -> paddle.Tensor:
    """``[N, C, H, W]`` scores back through ``Resize``/``Padding`` (bilinear)."""
    for op, h, w in _steps(trans_info):
        if op == "resize":
            logits = F.interpolate(logits, [h, w], mode="bilinear", align_corners=False)
        else:
            logits = logits[:, :, :h, :w]
    return logits


def restore_label_map(labels: np.ndarray, trans_info) -> np.ndarray:
    """``[H, W]`` int32 class ids back through ``Resize``/``Padding`` (nearest)."""
    labels = labels.astype(np.int32)
    for op, h, w in _steps(trans_info):
        if op == "resize":
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            labels = labels[:h, :w]
    return labels
