"""FCN head over a backbone (PaddleSeg's FCN, as used with HRNet: "FCN-HRNetW18").

Long, Jonathan, Evan Shelhamer, and Trevor Darrell. "Fully Convolutional Networks for Semantic
Segmentation." CVPR 2015. https://arxiv.org/abs/1411.4038

Same arguments and sublayer names as PaddleSeg's ``FCN``, except that the 1x1 conv before the
BatchNorm has no bias (BN cancels it; a PaddleSeg checkpoint loads after
:func:`~segq.models.layers.fold_conv_bias_into_bn`) and there is no ``bias`` argument.
"""
from __future__ import annotations

import paddle.nn as nn

from segq.models import layers
from segq.registry import MODELS


@MODELS.register
class FCN(nn.Layer):
    """A 1x1 ConvBNReLU and a 1x1 classifier on one backbone feature map, upsampled.

    Args:
        num_classes: number of output classes.
        backbone: a backbone layer (built from its config by the builder) with
            ``feat_channels``.
        backbone_indices: one index into the backbone's feature list (default: the last).
        channels: width of the hidden 1x1 conv; ``None`` keeps the feature's channels.
        align_corners: passed to the final bilinear resize.

    ``forward(x)`` returns ``[logits]`` (``[N, num_classes, H, W]``) in train and eval mode.
    """

    def __init__(self, num_classes: int, backbone: nn.Layer, backbone_indices=(-1,),
                 channels: int | None = None, align_corners: bool = False):
        super().__init__()
        layers.check_num_classes(num_classes)
        backbone_indices = tuple(backbone_indices)
        if len(backbone_indices) != 1:
            raise ValueError(f"FCN uses one backbone feature, got backbone_indices="
                             f"{list(backbone_indices)}")
        self.backbone = backbone
        in_ch = backbone.feat_channels[backbone_indices[0]]
        self.head = FCNHead(num_classes, backbone_indices, in_ch, channels)
        self.align_corners = align_corners
        self.in_channels = getattr(backbone, "in_channels", 3)

    def forward(self, x):
        logits = self.head(self.backbone(x))
        return layers.resize_logits(self, logits, x, self.align_corners)


class FCNHead(nn.Layer):
    def __init__(self, num_classes: int, backbone_indices, in_channels: int,
                 channels: int | None = None):
        super().__init__()
        channels = channels or in_channels
        self.backbone_indices = backbone_indices
        self.conv_1 = layers.ConvBNReLU(in_channels, channels, 1)
        self.cls = nn.Conv2D(channels, num_classes, 1)
        layers.init_conv_bn(self)

    def forward(self, feat_list):
        return [self.cls(self.conv_1(feat_list[self.backbone_indices[0]]))]
