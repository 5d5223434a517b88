"""Soft Dice loss over softmax probabilities."""
from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F

from segq.losses.common import EPS, check_inputs, check_weight_len, class_weights, safe_label
from segq.registry import LOSSES


@LOSSES.register
class DiceLoss(nn.Layer):
    """``1 - (2|P.Y| + smooth) / (|P| + |Y| + smooth)`` per image and class, averaged over
    images with valid pixels, then weighted-summed over classes and divided by C (PaddleSeg's
    reduction). Ignored pixels are removed from both P and Y.

    Args:
        weight: optional per-class weights (length C); default all 1.
        ignore_index: label value excluded from the loss.
        smooth: Laplace smoothing; also makes a class absent from both P and Y cost 0.
    """

    def __init__(self, weight=None, ignore_index: int = 255, smooth: float = 1.0):
        super().__init__()
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.weight = class_weights(weight)
        self.ignore_index = ignore_index
        self.smooth = float(smooth)

    def forward(self, logits, label):
        label = check_inputs(logits, label)
        n, c = logits.shape[0], logits.shape[1]
        check_weight_len(self.weight, c, "DiceLoss")
        # Channels-last layout: a last-axis softmax is faster on CPU than one over axis 1,
        # and F.one_hot already yields [N, HW, C].
        valid = (label != self.ignore_index).astype("float32").reshape([n, -1, 1])
        onehot = F.one_hot(safe_label(label, self.ignore_index).reshape([n, -1]), c) * valid
        prob = F.softmax(logits.transpose([0, 2, 3, 1]).reshape([n, -1, c]), axis=-1) * valid
        inter = (prob * onehot).sum(axis=1)  # [N, C]
        card = prob.sum(axis=1) + onehot.sum(axis=1)
        dice = 1.0 - (2.0 * inter + self.smooth) / (card + self.smooth + EPS)  # [N, C]
        # Images without a valid pixel must not count (with smooth=0 they would cost 1).
        has_valid = (valid.sum(axis=1) > 0).astype("float32")  # [N, 1]
        per_class = (dice * has_valid).sum(axis=0) / (has_valid.sum() + EPS)  # [C]
        if self.weight is not None:
            per_class = per_class * self.weight
        return per_class.sum() / c
