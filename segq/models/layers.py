"""Shared building blocks for segq's models.

Every block is made of plain ``nn.Conv2D`` / ``nn.BatchNorm2D`` / activation sublayers, so
PaddleSlim's QAT finds and wraps each convolution, and the legacy ``.pdmodel`` exporter sees
only ops it can build.

Sublayer attribute names (``_conv``, ``_batch_norm``, ``depthwise_conv``, ...) follow PaddleSeg's
``layer_libs``, and convolutions default to ``padding='same'`` like PaddleSeg's. Unlike PaddleSeg,
a convolution followed by BatchNorm has no bias: BN cancels it, and on CPU the separate bias add
and its gradient cost about 20% of a BiSeNetV2 training step. A PaddleSeg checkpoint loads after
:func:`fold_conv_bias_into_bn`.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from segq.models import legacy_ops


# Kept under its old name; the legacy-exporter workarounds live in segq.models.legacy_ops.
legacy_sigmoid = legacy_ops.sigmoid


class Sigmoid(nn.Layer):
    """Layer form of :func:`segq.models.legacy_ops.sigmoid`; use it instead of ``nn.Sigmoid``
    in models (both ``nn.Sigmoid`` and ``F.sigmoid`` fail under the legacy exporter)."""

    def forward(self, x):
        return legacy_ops.sigmoid(x)


def max_over_channels(x: paddle.Tensor) -> paddle.Tensor:
    """``paddle.max(x, axis=1, keepdim=True)`` of an NCHW tensor; in dygraph ``topk(k=1)``.

    Same values and, without ties, the same gradient, but in Paddle 3.3.1 the backward of
    ``paddle.max``/``paddle.amax`` along the channel axis is pathologically slow on CPU.
    Exports need no backward and take ``reduce_max``, whose inference kernel is faster than
    ``top_k_v2``'s (figures: docs/design-notes.md).
    """
    if paddle.in_dynamic_mode():
        return paddle.topk(x, k=1, axis=1)[0]
    return paddle.max(x, axis=1, keepdim=True)


def check_num_classes(num_classes: int) -> None:
    """Every model's first argument check, in one place."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")


def spatial_size(x: paddle.Tensor):
    """``[H, W]`` of an NCHW tensor that stays symbolic in a dynamic-shape export.

    ``x.shape[2:]`` is ``[-1, -1]`` while tracing with an unknown input size, which
    ``F.interpolate`` rejects; ``paddle.shape`` becomes a runtime shape op instead.
    """
    return paddle.shape(x)[2:]


def resize_to(x: paddle.Tensor, ref: paddle.Tensor, align_corners: bool = False) -> paddle.Tensor:
    """Bilinearly resize ``x`` to the spatial size of ``ref``."""
    return F.interpolate(x, spatial_size(ref), mode="bilinear", align_corners=align_corners)


def resize_logits(model: nn.Layer, logits: list[paddle.Tensor], x: paddle.Tensor,
                  align_corners: bool = False, align_mode: int = 0) -> list[paddle.Tensor]:
    """A model's last step: its logits bilinearly resized to the input size. An export that
    takes the arg max at the logits' own resolution (``--argmax_before_resize``) sets
    ``model.resize_logits_to_input = False`` while tracing: resizing C channels is then
    replaced by resizing one label map."""
    if not getattr(model, "resize_logits_to_input", True):
        return logits
    size = spatial_size(x)
    return [F.interpolate(logit, size, mode="bilinear", align_corners=align_corners,
                          align_mode=align_mode) for logit in logits]


class ConvBN(nn.Layer):
    """Conv2D followed by BatchNorm2D."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding="same", bias_attr=False, **conv_kwargs):
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, padding=padding,
                               bias_attr=bias_attr, **conv_kwargs)
        self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class ConvBNReLU(ConvBN):
    """Conv2D, BatchNorm2D, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding="same", bias_attr=False, **conv_kwargs):
        super().__init__(in_channels, out_channels, kernel_size, padding, bias_attr,
                         **conv_kwargs)
        self._relu = nn.ReLU()

    def forward(self, x):
        return self._relu(super().forward(x))


class ConvReLU(nn.Layer):
    """Conv2D followed by ReLU (no normalization)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding="same", **conv_kwargs):
        super().__init__()
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, padding=padding,
                               **conv_kwargs)
        self._relu = nn.ReLU()

    def forward(self, x):
        return self._relu(self._conv(x))


class DepthwiseConvBN(nn.Layer):
    """Grouped conv with one group per input channel (``out_channels`` may be a multiple of
    ``in_channels``: a channel multiplier, as BiSeNetV2's expansion layers use), then BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding="same", **conv_kwargs):
        super().__init__()
        if out_channels % in_channels:
            raise ValueError(f"DepthwiseConvBN needs out_channels ({out_channels}) to be a "
                             f"multiple of in_channels ({in_channels})")
        self.depthwise_conv = ConvBN(in_channels, out_channels, kernel_size, padding=padding,
                                     groups=in_channels, **conv_kwargs)

    def forward(self, x):
        return self.depthwise_conv(x)


class SeparableConvBNReLU(nn.Layer):
    """Depthwise conv + BN, then pointwise conv + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding="same", pointwise_bias=False, **conv_kwargs):
        super().__init__()
        self.depthwise_conv = ConvBN(in_channels, in_channels, kernel_size, padding=padding,
                                     groups=in_channels, **conv_kwargs)
        # PaddleSeg's key is spelled 'piontwise_conv'; kept so its checkpoints load strictly.
        self.piontwise_conv = ConvBNReLU(in_channels, out_channels, 1, bias_attr=pointwise_bias)

    def forward(self, x):
        return self.piontwise_conv(self.depthwise_conv(x))


# Every BatchNorm kind a model can hold (SyncBatchNorm is what PaddleSeg configs name).
BATCH_NORMS = (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)


def batch_norm_layers(layer: nn.Layer) -> list[nn.Layer]:
    return [sub for sub in layer.sublayers(include_self=True) if isinstance(sub, BATCH_NORMS)]


def init_conv_bn(layer: nn.Layer) -> None:
    """Kaiming-normal convolutions, unit-scale zero-shift BatchNorm (PaddleSeg's default init)."""
    kaiming = nn.initializer.KaimingNormal()
    one, zero = nn.initializer.Constant(1.0), nn.initializer.Constant(0.0)
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, nn.Conv2D):
            kaiming(sub.weight)
        elif isinstance(sub, BATCH_NORMS):
            one(sub.weight)
            zero(sub.bias)


def fold_conv_bias_into_bn(state_dict: dict) -> dict:
    """Return a copy of a PaddleSeg-style state dict without the bias of convolutions that
    feed a BatchNorm, folded into that BN's running mean.

    In eval mode ``BN(conv(x) + b)`` with running mean ``m`` equals ``BN(conv(x))`` with
    running mean ``m - b``; in training mode the batch mean absorbs ``b`` anyway.
    """
    out = dict(state_dict)
    for key in list(out):
        if key != "_conv.bias" and not key.endswith("._conv.bias"):
            continue
        mean_key = key[: -len("_conv.bias")] + "_batch_norm._mean"
        if mean_key in out:
            out[mean_key] = out[mean_key] - out.pop(key)
    return out


class AuxLayer(nn.Layer):
    """Auxiliary segmentation head for deep supervision: 3x3 ConvBNReLU, dropout, 1x1
    classifier (PaddleSeg's ``AuxLayer``; same sublayer names)."""

    def __init__(self, in_channels: int, inter_channels: int, out_channels: int,
                 dropout_prob: float = 0.1):
        super().__init__()
        self.conv_bn_relu = ConvBNReLU(in_channels, inter_channels, 3, padding=1)
        self.dropout = nn.Dropout(p=dropout_prob)
        self.conv = nn.Conv2D(inter_channels, out_channels, 1)

    def forward(self, x):
        return self.conv(self.dropout(self.conv_bn_relu(x)))
