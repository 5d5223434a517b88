"""One image's exported-model output -> class ids at the image's original size."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import paddle

from ..data.trans_info import restore_label_map, restore_original_size


def label_map(output: np.ndarray, trans_info: Iterable | None = None) -> np.ndarray:
    """``[H, W]`` class ids (argmax export) or ``[C, H, W]`` probabilities/logits of one
    image -> ``HxW`` int32 class ids, undoing ``trans_info``'s resizes and paddings.

    Scores are restored before the argmax (bilinear, as dygraph evaluation does); class ids
    can only be resized by nearest neighbour."""
    if output.ndim == 3:
        logits = restore_original_size(paddle.to_tensor(output[None]), trans_info)
        return paddle.argmax(logits, axis=1).numpy()[0].astype(np.int32)
    if output.ndim != 2:
        raise ValueError(f"one image's output must be [H, W] class ids or [C, H, W] scores, "
                         f"got shape {output.shape}")
    return restore_label_map(output, trans_info)
