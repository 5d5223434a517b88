"""PP-LiteSeg.

Peng, Juncai, et al. "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model."
arXiv:2204.02681 (2022). https://arxiv.org/abs/2204.02681

A backbone (STDC1 for PP-LiteSeg-T, STDC2 for PP-LiteSeg-B), a simple pyramid pooling context
module (SPPM) on its last feature, and a flexible lightweight decoder of unified attention
fusion modules (UAFM) that fuse each upsampled deeper feature with a backbone feature.

Same structure and sublayer names as PaddleSeg's ``PPLiteSeg`` (``backbone``, ``ppseg_head``
with ``cm``/``arm_list``, ``seg_heads``), so its checkpoints load after
:func:`segq.models.layers.fold_conv_bias_into_bn`. Export- and speed-driven differences: the
sigmoid is :class:`~segq.models.layers.Sigmoid` (``F.sigmoid`` does not build under the legacy
exporter) and the channel max of the spatial attention is ``topk(k=1)`` in training
(:func:`~segq.models.layers.max_over_channels`; ``paddle.max``'s backward along channels is
pathologically slow in Paddle 3.3.1), ``reduce_max`` in exports.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from segq.models import layers
from segq.registry import MODELS


@MODELS.register
class PPLiteSeg(nn.Layer):
    """PP-LiteSeg on a backbone with ``feat_channels`` and a list of feature maps as output.

    Args:
        num_classes: number of output classes.
        backbone: the backbone layer (e.g. ``STDC1`` for PP-LiteSeg-T, ``STDC2`` for -B).
        backbone_indices: which backbone outputs the decoder fuses, shallow to deep; the last
            one also feeds the context module (default: strides 8, 16, 32 of STDC).
        arm_type: fusion module, one of :data:`ARM_TYPES` (paper: ``UAFM_SpAtten``).
        cm_bin_sizes: output sizes of the context module's adaptive average pools.
        cm_out_ch: channels of the context module's output.
        arm_out_chs: output channels of each fusion module, one per backbone index.
        seg_head_inter_chs: middle channels of each segmentation head, one per index.
        resize_mode: interpolation used to upsample deep features in the decoder.

    ``forward(x)`` returns ``[main]`` in eval mode and ``[main, aux16, aux32]`` in training
    mode (a head on every decoder stage), each ``[N, num_classes, H, W]`` at the input's size.
    """

    def __init__(self, num_classes: int, backbone: nn.Layer, backbone_indices=(2, 3, 4),
                 arm_type: str = "UAFM_SpAtten", cm_bin_sizes=(1, 2, 4), cm_out_ch: int = 128,
                 arm_out_chs=(64, 96, 128), seg_head_inter_chs=(64, 64, 64),
                 resize_mode: str = "bilinear"):
        super().__init__()
        layers.check_num_classes(num_classes)
        feat_channels = getattr(backbone, "feat_channels", None)
        if feat_channels is None:
            raise ValueError("PPLiteSeg needs a backbone with a feat_channels attribute")
        backbone_indices = [int(i) for i in backbone_indices]
        if len(backbone_indices) < 2 or max(backbone_indices) >= len(feat_channels):
            raise ValueError(f"backbone_indices must give at least 2 indices below "
                             f"{len(feat_channels)} (the backbone's outputs), got "
                             f"{backbone_indices}")
        arm_out_chs = _per_index(arm_out_chs, backbone_indices, "arm_out_chs")
        seg_head_inter_chs = _per_index(seg_head_inter_chs, backbone_indices,
                                        "seg_head_inter_chs")
        self.backbone = backbone
        self.backbone_indices = backbone_indices
        backbone_out_chs = [feat_channels[i] for i in backbone_indices]
        self.ppseg_head = PPLiteSegHead(backbone_out_chs, arm_out_chs, list(cm_bin_sizes),
                                        cm_out_ch, arm_type, resize_mode)
        self.seg_heads = nn.LayerList([SegHead(c, mid, num_classes)
                                       for c, mid in zip(arm_out_chs, seg_head_inter_chs)])
        self.in_channels = getattr(backbone, "in_channels", 3)  # read by the exporter
        layers.init_conv_bn(self.ppseg_head)
        layers.init_conv_bn(self.seg_heads)

    def forward(self, x):
        feats = self.backbone(x)
        feats = self.ppseg_head([feats[i] for i in self.backbone_indices])  # shallow first
        if not self.training:
            feats = feats[:1]  # only the highest-resolution head serves inference
        return layers.resize_logits(self, [head(f) for head, f in zip(self.seg_heads, feats)], x)


def _per_index(values, backbone_indices, name):
    values = [int(v) for v in values]
    if len(values) == 1:
        values = values * len(backbone_indices)
    if len(values) != len(backbone_indices):
        raise ValueError(f"{name} needs one entry per backbone index ({len(backbone_indices)}),"
                         f" got {values}")
    return values


class PPLiteSegHead(nn.Layer):
    """SPPM on the deepest feature, then one fusion module per backbone feature, deep to
    shallow; returns the fused features shallow first."""

    def __init__(self, backbone_out_chs, arm_out_chs, cm_bin_sizes, cm_out_ch: int,
                 arm_type: str, resize_mode: str):
        super().__init__()
        if arm_type not in ARM_TYPES:
            raise ValueError(f"arm_type must be one of {sorted(ARM_TYPES)}, got {arm_type!r}")
        self.cm = PPContextModule(backbone_out_chs[-1], cm_out_ch, cm_out_ch, cm_bin_sizes)
        arm_class = ARM_TYPES[arm_type]
        self.arm_list = nn.LayerList()  # [arm8, arm16, arm32]
        for i, (low_ch, out_ch) in enumerate(zip(backbone_out_chs, arm_out_chs)):
            high_ch = cm_out_ch if i == len(backbone_out_chs) - 1 else arm_out_chs[i + 1]
            self.arm_list.append(arm_class(low_ch, high_ch, out_ch, ksize=3,
                                           resize_mode=resize_mode))

    def forward(self, in_feat_list):
        high_feat = self.cm(in_feat_list[-1])
        out_feat_list = []
        for i in reversed(range(len(in_feat_list))):
            high_feat = self.arm_list[i](in_feat_list[i], high_feat)
            out_feat_list.insert(0, high_feat)
        return out_feat_list


class PPContextModule(nn.Layer):
    """Simple pyramid pooling module: adaptive average pools, 1x1 ConvBNReLU each, upsampled
    back and summed, then a 3x3 ConvBNReLU."""

    def __init__(self, in_channels: int, inter_channels: int, out_channels: int, bin_sizes,
                 align_corners: bool = False):
        super().__init__()
        self.stages = nn.LayerList([
            nn.Sequential(nn.AdaptiveAvgPool2D(output_size=size),
                          layers.ConvBNReLU(in_channels, inter_channels, 1))
            for size in bin_sizes])
        self.conv_out = layers.ConvBNReLU(inter_channels, out_channels, 3, padding=1)
        self.align_corners = align_corners

    def forward(self, input):
        out = None
        for stage in self.stages:
            x = layers.resize_to(stage(input), input, self.align_corners)
            out = x if out is None else out + x
        return self.conv_out(out)


class UAFM(nn.Layer):
    """Unified attention fusion module, base form: ``conv_out(conv_x(x) + up(y))``.

    Args:
        x_ch: channels of the low-level (higher-resolution) feature ``x``.
        y_ch: channels of the high-level feature ``y``.
        out_ch: channels of the output.
        ksize: kernel size of ``conv_x``.
        resize_mode: interpolation that upsamples ``y`` to ``x``'s size.
    """

    def __init__(self, x_ch: int, y_ch: int, out_ch: int, ksize: int = 3,
                 resize_mode: str = "bilinear"):
        super().__init__()
        self.conv_x = layers.ConvBNReLU(x_ch, y_ch, ksize, padding=ksize // 2)
        self.conv_out = layers.ConvBNReLU(y_ch, out_ch, 3, padding=1)
        self.resize_mode = resize_mode

    def prepare(self, x, y):
        x = self.conv_x(x)
        y = F.interpolate(y, layers.spatial_size(x), mode=self.resize_mode)
        return x, y

    def fuse(self, x, y):
        return self.conv_out(x + y)

    def forward(self, x, y):
        x, y = self.prepare(x, y)
        return self.fuse(x, y)


class UAFM_SpAtten(UAFM):
    """UAFM with spatial attention from the channel mean and max of both inputs:
    ``alpha = sigmoid(conv([mean(x), max(x), mean(y), max(y)]))``,
    ``out = conv_out(x * alpha + y * (1 - alpha))``.

    ``_scale`` (a constant 1, not trained) stands for the ``1`` as in PaddleSeg, whose
    checkpoints carry it."""

    def __init__(self, x_ch: int, y_ch: int, out_ch: int, ksize: int = 3,
                 resize_mode: str = "bilinear"):
        super().__init__(x_ch, y_ch, out_ch, ksize, resize_mode)
        self.conv_xy_atten = nn.Sequential(
            layers.ConvBNReLU(4, 2, 3, padding=1),
            layers.ConvBN(2, 1, 3, padding=1))
        self.sigmoid = layers.Sigmoid()
        self._scale = self.create_parameter(
            shape=[1], dtype="float32", default_initializer=nn.initializer.Constant(1.0))
        self._scale.stop_gradient = True

    def attention_input(self, x, y):
        return paddle.concat([paddle.mean(x, axis=1, keepdim=True), layers.max_over_channels(x),
                              paddle.mean(y, axis=1, keepdim=True), layers.max_over_channels(y)],
                             axis=1)

    def fuse(self, x, y):
        atten = self.sigmoid(self.conv_xy_atten(self.attention_input(x, y)))
        return self.conv_out(x * atten + y * (self._scale - atten))


class UAFM_SpAtten_S(UAFM):
    """UAFM with spatial attention from the channel means only (cheaper, no max)."""

    def __init__(self, x_ch: int, y_ch: int, out_ch: int, ksize: int = 3,
                 resize_mode: str = "bilinear"):
        super().__init__(x_ch, y_ch, out_ch, ksize, resize_mode)
        self.conv_xy_atten = nn.Sequential(
            layers.ConvBNReLU(2, 2, 3, padding=1),
            layers.ConvBN(2, 1, 3, padding=1))
        self.sigmoid = layers.Sigmoid()

    def fuse(self, x, y):
        atten = paddle.concat([paddle.mean(x, axis=1, keepdim=True),
                               paddle.mean(y, axis=1, keepdim=True)], axis=1)
        atten = self.sigmoid(self.conv_xy_atten(atten))
        return self.conv_out(x * atten + y * (1 - atten))


ARM_TYPES = {"UAFM": UAFM, "UAFM_SpAtten": UAFM_SpAtten, "UAFM_SpAtten_S": UAFM_SpAtten_S}


class SegHead(nn.Layer):
    """3x3 ConvBNReLU, then a 1x1 classifier without bias."""

    def __init__(self, in_chan: int, mid_chan: int, n_classes: int):
        super().__init__()
        self.conv = layers.ConvBNReLU(in_chan, mid_chan, 3, padding=1)
        self.conv_out = nn.Conv2D(mid_chan, n_classes, 1, bias_attr=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))
