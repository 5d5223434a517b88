"""GCNet: global context network.

Cao, Yue, et al. "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond."
ICCV Workshops 2019. https://arxiv.org/abs/1904.11492

A global context block (query-independent attention pooling to one context vector, a
bottleneck transform with LayerNorm, broadcast-added to every pixel) on the backbone's deep
feature, with an auxiliary FCN head on a shallower one.

Same structure and sublayer names as PaddleSeg's ``GCNet`` (``backbone``, ``head`` with
``conv_bn_relu1..3``/``gc_block``/``conv``/``auxlayer``). Differences: the attention pooling's
matrix product goes through :func:`segq.models.legacy_ops.matmul` (``paddle.matmul`` does not
build under the legacy exporter); the auxiliary logits are returned in training mode only
(segq's model contract; PaddleSeg returns them in eval mode too); convolutions feeding
BatchNorm have no bias (PaddleSeg checkpoints load after
:func:`segq.models.layers.fold_conv_bias_into_bn`).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models import layers, legacy_ops
from segq.registry import MODELS


@MODELS.register
class GCNet(nn.Layer):
    """GCNet on a backbone with ``feat_channels`` and a list of feature maps as output.

    Args:
        num_classes: number of output classes.
        backbone: the backbone layer (PaddleSeg uses ResNet50_vd/ResNet101_vd, output stride 8).
        backbone_indices: two backbone outputs: the auxiliary head's input, then the main
            head's input.
        gc_channels: channels of the global context block.
        ratio: bottleneck ratio of the context transform (its width is ``gc_channels * ratio``).
        enable_auxiliary_loss: add the auxiliary head (a second output in training mode).
        align_corners: passed to the final bilinear upsampling.

    ``forward(x)`` returns ``[main]`` in eval mode and ``[main, aux]`` in training mode (with
    ``enable_auxiliary_loss``), each ``[N, num_classes, H, W]`` at the input's size.
    """

    def __init__(self, num_classes: int, backbone: nn.Layer, backbone_indices=(2, 3),
                 gc_channels: int = 512, ratio: float = 0.25, enable_auxiliary_loss: bool = True,
                 align_corners: bool = False):
        super().__init__()
        layers.check_num_classes(num_classes)
        feat_channels = getattr(backbone, "feat_channels", None)
        if feat_channels is None:
            raise ValueError("GCNet needs a backbone with a feat_channels attribute")
        backbone_indices = [int(i) for i in backbone_indices]
        if len(backbone_indices) != 2 or max(backbone_indices) >= len(feat_channels):
            raise ValueError(f"backbone_indices must give 2 indices below {len(feat_channels)} "
                             f"(the backbone's outputs), got {backbone_indices}")
        self.backbone = backbone
        self.head = GCNetHead(num_classes, backbone_indices,
                              [feat_channels[i] for i in backbone_indices], gc_channels, ratio,
                              enable_auxiliary_loss)
        self.align_corners = align_corners
        self.in_channels = getattr(backbone, "in_channels", 3)  # read by the exporter
        layers.init_conv_bn(self.head)

    def forward(self, x):
        logits = self.head(self.backbone(x))
        return layers.resize_logits(self, logits, x, self.align_corners)


class GCNetHead(nn.Layer):
    """ConvBNReLU to ``gc_channels``, global context block, ConvBNReLU, concatenation with the
    backbone feature, ConvBNReLU, dropout, 1x1 classifier; plus an auxiliary FCN head."""

    def __init__(self, num_classes: int, backbone_indices, backbone_channels, gc_channels: int,
                 ratio: float, enable_auxiliary_loss: bool = True):
        super().__init__()
        in_channels = backbone_channels[1]
        self.conv_bn_relu1 = layers.ConvBNReLU(in_channels, gc_channels, 3, padding=1)
        self.gc_block = GlobalContextBlock(gc_channels, gc_channels, ratio)
        self.conv_bn_relu2 = layers.ConvBNReLU(gc_channels, gc_channels, 3, padding=1)
        self.conv_bn_relu3 = layers.ConvBNReLU(in_channels + gc_channels, gc_channels, 3,
                                               padding=1)
        self.dropout = nn.Dropout(p=0.1)
        self.conv = nn.Conv2D(gc_channels, num_classes, 1)
        if enable_auxiliary_loss:
            self.auxlayer = layers.AuxLayer(backbone_channels[0], backbone_channels[0] // 4,
                                            num_classes)
        self.backbone_indices = list(backbone_indices)
        self.enable_auxiliary_loss = enable_auxiliary_loss

    def forward(self, feat_list):
        x = feat_list[self.backbone_indices[1]]
        output = self.conv_bn_relu2(self.gc_block(self.conv_bn_relu1(x)))
        output = self.conv_bn_relu3(paddle.concat([x, output], axis=1))
        logits = [self.conv(self.dropout(output))]
        if self.training and self.enable_auxiliary_loss:
            logits.append(self.auxlayer(feat_list[self.backbone_indices[0]]))
        return logits


class GlobalContextBlock(nn.Layer):
    """Global context block: softmax attention pooling over all pixels (``conv_mask``) to one
    context vector, a 1x1 bottleneck with LayerNorm (``channel_add_conv``), added to ``x``."""

    def __init__(self, gc_channels: int, in_channels: int, ratio: float):
        super().__init__()
        self.gc_channels = gc_channels
        self.conv_mask = nn.Conv2D(in_channels, 1, 1)
        self.softmax = nn.Softmax(axis=2)
        inter_channels = int(in_channels * ratio)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2D(in_channels, inter_channels, 1),
            nn.LayerNorm(normalized_shape=[inter_channels, 1, 1]),
            nn.ReLU(),
            nn.Conv2D(inter_channels, in_channels, 1))

    def global_context_block(self, x):
        input_x = paddle.reshape(x, (0, self.gc_channels, -1))  # n, c, hw
        context_mask = paddle.reshape(self.conv_mask(x), (0, 1, -1))  # n, 1, hw
        context_mask = self.softmax(context_mask)
        # n, c, hw @ (n, 1, hw)^T -> n, c, 1: the attention-weighted mean of every channel
        context = legacy_ops.matmul(input_x, context_mask, transpose_y=True)
        return paddle.reshape(context, (0, self.gc_channels, 1, 1))

    def forward(self, x):
        return x + self.channel_add_conv(self.global_context_block(x))
