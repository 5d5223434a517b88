"""DeepLabV3+.

Chen, Liang-Chieh, et al. "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
Segmentation." ECCV 2018. https://arxiv.org/abs/1802.02611

Atrous spatial pyramid pooling (separable atrous convs + image pooling) on the deepest backbone
feature, then a decoder that fuses it with a stride-4 low-level feature.

Same arguments and sublayer names as PaddleSeg's ``DeepLabV3P``; differences: convs followed by
BatchNorm have no bias (see :mod:`segq.models.layers`), the decoder's input width follows
``aspp_out_channels`` (PaddleSeg hard-codes 256 + 48 = 304) and its width is
``aspp_out_channels`` (256 by default, as in PaddleSeg), and resizes read the runtime shape
(dynamic-shape export).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models import layers
from segq.registry import MODELS


@MODELS.register
class DeepLabV3P(nn.Layer):
    """DeepLabV3+ over a backbone with ``feat_channels``.

    Args:
        num_classes: number of output classes.
        backbone: a backbone layer (built from its config by the builder).
        backbone_indices: (low-level feature for the decoder, feature for ASPP); (0, 3) takes
            ResNet's stride-4 and last stage.
        aspp_ratios: dilation of the ASPP branches (1 = a 1x1 conv). Match the backbone's
            output stride: (1, 12, 24, 36) at 8, (1, 6, 12, 18) at 16.
        aspp_out_channels: width of each ASPP branch, of the ASPP output and of the decoder.
        align_corners: passed to every bilinear resize.

    ``forward(x)`` returns ``[logits]`` (``[N, num_classes, H, W]``) in train and eval mode.
    """

    def __init__(self, num_classes: int, backbone: nn.Layer, backbone_indices=(0, 3),
                 aspp_ratios=(1, 12, 24, 36), aspp_out_channels: int = 256,
                 align_corners: bool = False):
        super().__init__()
        layers.check_num_classes(num_classes)
        backbone_indices = tuple(backbone_indices)
        if len(backbone_indices) != 2:
            raise ValueError(f"backbone_indices needs (low-level, ASPP input) indices, got "
                             f"{list(backbone_indices)}")
        self.backbone = backbone
        channels = [backbone.feat_channels[i] for i in backbone_indices]
        self.head = DeepLabV3PHead(num_classes, backbone_indices, channels, tuple(aspp_ratios),
                                   aspp_out_channels, align_corners)
        self.align_corners = align_corners
        self.in_channels = getattr(backbone, "in_channels", 3)

    def forward(self, x):
        logits = self.head(self.backbone(x))
        return layers.resize_logits(self, logits, x, self.align_corners)


class DeepLabV3PHead(nn.Layer):
    def __init__(self, num_classes: int, backbone_indices, backbone_channels, aspp_ratios,
                 aspp_out_channels: int, align_corners: bool):
        super().__init__()
        self.backbone_indices = backbone_indices
        self.aspp = ASPPModule(aspp_ratios, backbone_channels[1], aspp_out_channels,
                               align_corners, use_sep_conv=True, image_pooling=True)
        self.decoder = Decoder(num_classes, backbone_channels[0], align_corners,
                               aspp_channels=aspp_out_channels, channels=aspp_out_channels)
        layers.init_conv_bn(self)

    def forward(self, feat_list):
        low_level = feat_list[self.backbone_indices[0]]
        x = self.aspp(feat_list[self.backbone_indices[1]])
        return [self.decoder(x, low_level)]


class ASPPModule(nn.Layer):
    """Atrous spatial pyramid pooling: parallel (separable) atrous convs and, with
    ``image_pooling``, a global-average branch; concatenated, fused by a 1x1 ConvBNReLU,
    dropout."""

    def __init__(self, aspp_ratios, in_channels: int, out_channels: int, align_corners: bool,
                 use_sep_conv: bool = False, image_pooling: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self.aspp_blocks = nn.LayerList()
        for ratio in aspp_ratios:
            if ratio == 1:
                block = layers.ConvBNReLU(in_channels, out_channels, 1, padding=0)
            elif use_sep_conv:
                block = layers.SeparableConvBNReLU(in_channels, out_channels, 3,
                                                   padding=ratio, dilation=ratio)
            else:
                block = layers.ConvBNReLU(in_channels, out_channels, 3, padding=ratio,
                                          dilation=ratio)
            self.aspp_blocks.append(block)
        n_branches = len(aspp_ratios)
        self.image_pooling = image_pooling
        if image_pooling:
            self.global_avg_pool = nn.Sequential(
                nn.AdaptiveAvgPool2D(output_size=(1, 1)),
                layers.ConvBNReLU(in_channels, out_channels, 1))
            n_branches += 1
        self.conv_bn_relu = layers.ConvBNReLU(out_channels * n_branches, out_channels, 1)
        self.dropout = nn.Dropout(p=0.1)

    def forward(self, x):
        # Every atrous branch keeps the input size (padding == dilation), so only the pooled
        # branch needs resizing.
        outs = [block(x) for block in self.aspp_blocks]
        if self.image_pooling:
            outs.append(layers.resize_to(self.global_avg_pool(x), x, self.align_corners))
        return self.dropout(self.conv_bn_relu(paddle.concat(outs, axis=1)))


class Decoder(nn.Layer):
    """Reduce the low-level feature to 48 channels, concatenate the upsampled ASPP output,
    two separable 3x3 ConvBNReLUs, 1x1 classifier."""

    def __init__(self, num_classes: int, in_channels: int, align_corners: bool,
                 aspp_channels: int = 256, channels: int = 256):
        super().__init__()
        self.align_corners = align_corners
        self.conv_bn_relu1 = layers.ConvBNReLU(in_channels, 48, 1)
        self.conv_bn_relu2 = layers.SeparableConvBNReLU(aspp_channels + 48, channels, 3,
                                                        padding=1)
        self.conv_bn_relu3 = layers.SeparableConvBNReLU(channels, channels, 3, padding=1)
        self.conv = nn.Conv2D(channels, num_classes, 1)

    def forward(self, x, low_level_feat):
        low_level_feat = self.conv_bn_relu1(low_level_feat)
        x = layers.resize_to(x, low_level_feat, self.align_corners)
        x = paddle.concat([x, low_level_feat], axis=1)
        return self.conv(self.conv_bn_relu3(self.conv_bn_relu2(x)))
