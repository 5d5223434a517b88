"""DANet: dual attention network.

Fu, Jun, et al. "Dual Attention Network for Scene Segmentation." CVPR 2019.
https://arxiv.org/abs/1809.02983

A position attention module (self-attention over all pixel pairs) and a channel attention
module (self-attention over channel pairs) on the backbone's deepest feature, summed.

Same structure and sublayer names as PaddleSeg's ``DANet`` (``backbone``, ``head`` with
``pam``/``cam``/``conv1``/``conv2``/``cls_head``/``aux_head*``). Differences:

* PaddleSeg feeds the position-attention branch to ``aux_head_cam`` as well, leaving
  ``aux_head_pam`` untrained; here ``aux_head_pam`` serves the position branch, as intended.
* The matrix products go through :func:`segq.models.legacy_ops.matmul` (``paddle.bmm`` does
  not build under the legacy exporter).
* The channel attention computes ``softmax(-energy)`` where PaddleSeg computes
  ``softmax(rowmax(energy) - energy)``: softmax is invariant to a per-row constant, so both are
  the same function with the same gradient, without a max op.
* Convolutions feeding BatchNorm have no bias (PaddleSeg checkpoints load after
  :func:`segq.models.layers.fold_conv_bias_into_bn`).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models import layers, legacy_ops
from segq.registry import MODELS


@MODELS.register
class DANet(nn.Layer):
    """DANet on a backbone with ``feat_channels`` and a list of feature maps as output.

    Args:
        num_classes: number of output classes.
        backbone: the backbone layer (PaddleSeg uses ResNet50_vd/ResNet101_vd, output stride 8).
        backbone_indices: backbone outputs the head reads; only the last one is used (kept
            as a tuple for PaddleSeg's config compatibility).
        align_corners: passed to the final bilinear upsampling.

    ``forward(x)`` returns ``[main]`` in eval mode and ``[main, cam, pam, aux]`` in training
    mode (channel-attention, position-attention and backbone-feature auxiliary heads), each
    ``[N, num_classes, H, W]`` at the input's size.
    """

    def __init__(self, num_classes: int, backbone: nn.Layer, backbone_indices=(2, 3),
                 align_corners: bool = False):
        super().__init__()
        layers.check_num_classes(num_classes)
        feat_channels = getattr(backbone, "feat_channels", None)
        if feat_channels is None:
            raise ValueError("DANet needs a backbone with a feat_channels attribute")
        self.backbone_indices = [int(i) for i in backbone_indices]
        if not self.backbone_indices or max(self.backbone_indices) >= len(feat_channels):
            raise ValueError(f"backbone_indices must be below {len(feat_channels)} (the "
                             f"backbone's outputs), got {self.backbone_indices}")
        self.backbone = backbone
        self.head = DAHead(num_classes, [feat_channels[i] for i in self.backbone_indices])
        self.align_corners = align_corners
        self.in_channels = getattr(backbone, "in_channels", 3)  # read by the exporter
        layers.init_conv_bn(self.head)

    def forward(self, x):
        feats = self.backbone(x)
        logits = self.head([feats[i] for i in self.backbone_indices])
        # PaddleSeg upsamples DANet's logits with align_mode=1 (no half-pixel offset).
        return layers.resize_logits(self, logits, x, self.align_corners, align_mode=1)


class DAHead(nn.Layer):
    """Two branches from the deepest feature (reduced to 1/4 of its channels): position
    attention and channel attention, each followed by a 3x3 ConvBNReLU, summed, classified."""

    def __init__(self, num_classes: int, in_channels):
        super().__init__()
        in_channels = in_channels[-1]
        inter_channels = in_channels // 4
        self.channel_conv = layers.ConvBNReLU(in_channels, inter_channels, 3)
        self.position_conv = layers.ConvBNReLU(in_channels, inter_channels, 3)
        self.pam = PAM(inter_channels)
        self.cam = CAM(inter_channels)
        self.conv1 = layers.ConvBNReLU(inter_channels, inter_channels, 3)
        self.conv2 = layers.ConvBNReLU(inter_channels, inter_channels, 3)
        self.aux_head = nn.Sequential(nn.Dropout2D(0.1), nn.Conv2D(in_channels, num_classes, 1))
        self.aux_head_pam = nn.Sequential(nn.Dropout2D(0.1),
                                          nn.Conv2D(inter_channels, num_classes, 1))
        self.aux_head_cam = nn.Sequential(nn.Dropout2D(0.1),
                                          nn.Conv2D(inter_channels, num_classes, 1))
        self.cls_head = nn.Sequential(nn.Dropout2D(0.1), nn.Conv2D(inter_channels, num_classes, 1))

    def forward(self, feat_list):
        feats = feat_list[-1]
        channel_feats = self.conv1(self.cam(self.channel_conv(feats)))
        position_feats = self.conv2(self.pam(self.position_conv(feats)))
        logit = self.cls_head(position_feats + channel_feats)
        if not self.training:
            return [logit]
        return [logit, self.aux_head_cam(channel_feats), self.aux_head_pam(position_feats),
                self.aux_head(feats)]


class PAM(nn.Layer):
    """Position attention: every pixel attends to every pixel (query/key at 1/8 of the
    channels), ``out = gamma * attended_value + x`` with ``gamma`` learned from 0."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.mid_channels = in_channels // 8
        self.in_channels = in_channels
        self.query_conv = nn.Conv2D(in_channels, self.mid_channels, 1, 1)
        self.key_conv = nn.Conv2D(in_channels, self.mid_channels, 1, 1)
        self.value_conv = nn.Conv2D(in_channels, in_channels, 1, 1)
        self.softmax = nn.Softmax(axis=-1)
        self.gamma = self.create_parameter(
            shape=[1], dtype="float32", default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x):
        query = paddle.reshape(self.query_conv(x), (0, self.mid_channels, -1))  # n, c1, hw
        key = paddle.reshape(self.key_conv(x), (0, self.mid_channels, -1))  # n, c1, hw
        sim = self.softmax(legacy_ops.matmul(query, key, transpose_x=True))  # n, hw, hw
        value = paddle.reshape(self.value_conv(x), (0, self.in_channels, -1))  # n, c, hw
        feat = legacy_ops.matmul(value, sim, transpose_y=True)  # n, c, hw
        feat = paddle.reshape(feat, paddle.shape(x))
        return self.gamma * feat + x


class CAM(nn.Layer):
    """Channel attention: every channel attends to every channel by the (negated) Gram
    matrix, ``out = gamma * attended + x`` with ``gamma`` learned from 0."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.softmax = nn.Softmax(axis=-1)
        self.gamma = self.create_parameter(
            shape=[1], dtype="float32", default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x):
        flat = paddle.reshape(x, (0, self.channels, -1))  # n, c, hw
        energy = legacy_ops.matmul(flat, flat, transpose_y=True)  # n, c, c
        # The paper's softmax(rowmax(E) - E) equals softmax(-E): softmax ignores a per-row
        # constant (and subtracts the row max itself for stability).
        sim = self.softmax(-energy)
        feat = paddle.reshape(legacy_ops.matmul(sim, flat), paddle.shape(x))
        return self.gamma * feat + x
