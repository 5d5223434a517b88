"""A weighted sum of several losses applied to the same output."""
from __future__ import annotations

from typing import Any, Sequence

import paddle
import paddle.nn as nn

from segq.registry import LOSSES


@LOSSES.register
class MixedLoss(nn.Layer):
    """``sum_i coef[i] * losses[i](logits, label)``.

    Args:
        losses: loss configs such as ``{type: CrossEntropyLoss, ignore_index: 255}``, each
            built through ``LOSSES.build`` (an already-built loss object is also accepted).
        coef: one weight per loss.
    """

    def __init__(self, losses: Sequence[Any], coef: Sequence[float]):
        super().__init__()
        losses, coef = list(losses), [float(c) for c in coef]
        if not losses:
            raise ValueError("MixedLoss needs at least one loss in 'losses'")
        if len(losses) != len(coef):
            raise ValueError(f"MixedLoss got {len(losses)} losses but {len(coef)} coefficients "
                             f"in 'coef': give exactly one coefficient per loss")
        built = [LOSSES.build(spec) if isinstance(spec, dict) else spec for spec in losses]
        for spec, loss in zip(losses, built):
            if not callable(loss):
                raise TypeError(f"MixedLoss entry {spec!r} is neither a loss config dict "
                                f"nor a callable loss")
        # LayerList keeps sub-losses visible to .to()/state_dict like any sublayer.
        self.losses = nn.LayerList([l for l in built if isinstance(l, nn.Layer)])
        self._fns = built
        self.coef = coef

    def forward(self, logits, label):
        return paddle.add_n([c * fn(logits, label) for c, fn in zip(self.coef, self._fns)])
