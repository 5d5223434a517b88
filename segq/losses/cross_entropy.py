"""Pixel-wise softmax cross entropy with class weights, ignore_index and hard-pixel mining."""
from __future__ import annotations

import math

import paddle
import paddle.nn as nn

from segq.losses.common import (EPS, check_inputs, check_weight_len, class_weights,
                                pixel_nll, safe_label)
from segq.registry import LOSSES


@LOSSES.register
class CrossEntropyLoss(nn.Layer):
    """Softmax cross entropy over the class axis.

    Args:
        weight: optional per-class weights (length C). The loss is then the weighted mean
            ``sum(w[y] * nll) / sum(w[y])`` over valid pixels, as in PyTorch and PaddleSeg.
        ignore_index: label value that contributes neither loss nor gradient.
        top_k_percent_pixels: in (0, 1]; below 1 only the hardest ``k = p * N*H*W`` pixels
            (largest weighted loss) are averaged (hard pixel mining, as in PaddleSeg).
        avg_non_ignore: divide by the (weighted) count of valid pixels; if False, by the
            number of all pixels, so ignored pixels dilute the loss (PaddleSeg's old default).
    """

    def __init__(self, weight=None, ignore_index: int = 255, top_k_percent_pixels: float = 1.0,
                 avg_non_ignore: bool = True):
        super().__init__()
        if not 0.0 < top_k_percent_pixels <= 1.0:
            raise ValueError(f"top_k_percent_pixels must be in (0, 1], got {top_k_percent_pixels}")
        self.weight = class_weights(weight)
        self.ignore_index = ignore_index
        self.top_k_percent_pixels = top_k_percent_pixels
        self.avg_non_ignore = avg_non_ignore

    def forward(self, logits, label):
        label = check_inputs(logits, label)
        check_weight_len(self.weight, logits.shape[1], "CrossEntropyLoss")
        nll, valid = pixel_nll(logits, label, self.ignore_index)
        if self.weight is not None:
            coef = paddle.gather(self.weight, safe_label(label, self.ignore_index).flatten())
            coef = coef.reshape(label.shape) * valid
        else:
            coef = valid
        coef.stop_gradient = True
        loss = nll * coef

        if self.top_k_percent_pixels < 1.0:
            loss = loss.flatten()
            k = max(1, int(self.top_k_percent_pixels * loss.shape[0]))
            loss, idx = paddle.topk(loss, k)
            coef = paddle.gather(coef.flatten(), idx)
        # Without avg_non_ignore, divide by every pixel averaged (ignored ones included).
        denom = coef.sum() if self.avg_non_ignore else float(math.prod(loss.shape))
        # EPS keeps an all-ignored batch at 0 / EPS = 0 instead of 0 / 0.
        return loss.sum() / (denom + EPS)
