"""Dygraph inference for evaluation: plain, multi-scale/flip and sliding window
(mapping the logits back to the original image size is :mod:`segq.data.trans_info`)."""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ..config import TestConfig


def _forward(model: paddle.nn.Layer, x: paddle.Tensor) -> paddle.Tensor:
    return model(x)[0]


def slide_inference(model: paddle.nn.Layer, x: paddle.Tensor, crop_size: tuple[int, int],
                    stride: tuple[int, int]) -> paddle.Tensor:
    """Average logits over overlapping ``crop_size`` (w, h) windows moved by ``stride`` (w, h)."""
    _, _, h, w = x.shape
    cw, ch = crop_size
    sw, sh = stride
    rows = max(1, -(-max(h - ch, 0) // sh) + 1)
    cols = max(1, -(-max(w - cw, 0) // sw) + 1)
    total = count = None
    for r in range(rows):
        for c in range(cols):
            y1, x1 = min(r * sh, max(h - ch, 0)), min(c * sw, max(w - cw, 0))
            y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
            logit = _forward(model, x[:, :, y1:y2, x1:x2])
            if total is None:
                total = paddle.zeros([x.shape[0], logit.shape[1], h, w], dtype=logit.dtype)
                count = paddle.zeros([1, 1, h, w], dtype=logit.dtype)
            total[:, :, y1:y2, x1:x2] += logit
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


def _logits(model, x, test_cfg: TestConfig) -> paddle.Tensor:
    if test_cfg.is_slide:
        return slide_inference(model, x, test_cfg.crop_size, test_cfg.stride)
    return _forward(model, x)


def infer_logits(model: paddle.nn.Layer, x: paddle.Tensor,
                 test_cfg: TestConfig | None = None) -> paddle.Tensor:
    """Logits ``[N, C, H, W]`` at ``x``'s size. With ``aug_eval`` the softmax probabilities
    over every scale and flip are summed (PaddleSeg's convention)."""
    test_cfg = test_cfg or TestConfig()
    if not test_cfg.aug_eval:
        return _logits(model, x, test_cfg)
    h, w = x.shape[2:]
    total = None
    flips = [None] + ([3] if test_cfg.flip_horizontal else []) + \
            ([2] if test_cfg.flip_vertical else [])
    for scale in test_cfg.scales:
        size = [int(h * scale + 0.5), int(w * scale + 0.5)]
        xs = F.interpolate(x, size, mode="bilinear", align_corners=False) if scale != 1 else x
        for axis in flips:
            xi = paddle.flip(xs, [axis]) if axis is not None else xs
            logit = _logits(model, xi, test_cfg)
            if axis is not None:
                logit = paddle.flip(logit, [axis])
            logit = F.interpolate(logit, [h, w], mode="bilinear", align_corners=False)
            prob = F.softmax(logit, axis=1)
            total = prob if total is None else total + prob
    return total
