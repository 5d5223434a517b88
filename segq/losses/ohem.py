"""Online hard example mining cross entropy."""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.losses.common import EPS, check_inputs, pixel_nll
from segq.registry import LOSSES


@LOSSES.register
class OhemCrossEntropyLoss(nn.Layer):
    """Cross entropy averaged over the hard pixels only.

    A valid pixel is hard when the predicted probability of its true class is below
    ``thresh``; if fewer than ``min_kept`` pixels would be kept, the threshold rises to the
    ``min_kept``-th smallest probability so at least ``min_kept`` pixels are kept. With at most
    ``min_kept`` valid pixels all of them are kept (PaddleSeg's semantics).
    """

    def __init__(self, thresh: float = 0.7, min_kept: int = 10000, ignore_index: int = 255):
        super().__init__()
        if min_kept < 0:
            raise ValueError(f"min_kept must be >= 0, got {min_kept}")
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)
        self.ignore_index = ignore_index

    def forward(self, logits, label):
        label = check_inputs(logits, label)
        nll, valid = pixel_nll(logits, label, self.ignore_index)
        with paddle.no_grad():
            # Probability of the true class; ignored pixels get 2 so they sort last.
            prob = paddle.exp(-nll.detach()) * valid + (1.0 - valid) * 2.0
            num_valid = int(valid.sum())
            if num_valid <= self.min_kept:
                kept = valid
            else:
                hard = (prob < self.thresh).astype("float32")
                if self.min_kept > 0:
                    # topk(largest=False) is cheaper than a full sort (about 6 ms here).
                    kth = paddle.topk(prob.flatten(), self.min_kept, largest=False)[0][-1]
                    hard = paddle.maximum(hard, (prob <= kth).astype("float32"))
                kept = hard * valid
        kept.stop_gradient = True
        return (nll * kept).sum() / (kept.sum() + EPS)
