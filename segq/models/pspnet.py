"""PSPNet.

Zhao, Hengshuang, et al. "Pyramid Scene Parsing Network." CVPR 2017.
https://arxiv.org/abs/1612.01105

A pyramid pooling module (average pooling to 1x1, 2x2, 3x3 and 6x6 bins, each reduced by a 1x1
conv and upsampled) on the deepest backbone feature, and an auxiliary head on the previous stage
for deep supervision during training.

Same arguments and sublayer names as PaddleSeg's ``PSPNet``; differences: convs followed by
BatchNorm have no bias (see :mod:`segq.models.layers`), the auxiliary head runs only in training
mode, and resizes read the runtime shape (dynamic-shape export).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models import layers
from segq.registry import MODELS


@MODELS.register
class PSPNet(nn.Layer):
    """PSPNet over a backbone with ``feat_channels``.

    Args:
        num_classes: number of output classes.
        backbone: a backbone layer (built from its config by the builder).
        backbone_indices: (feature for the auxiliary head, feature for pyramid pooling);
            (2, 3) takes ResNet's last two stages.
        pp_out_channels: output width of the pyramid pooling module.
        bin_sizes: output sizes of the adaptive average pools.
        enable_auxiliary_loss: add the auxiliary head (a second output in training mode).
        align_corners: passed to every bilinear resize.

    ``forward(x)`` returns ``[main]`` in eval mode and ``[main, aux]`` in training mode (with
    ``enable_auxiliary_loss``), each ``[N, num_classes, H, W]``.
    """

    def __init__(self, num_classes: int, backbone: nn.Layer, backbone_indices=(2, 3),
                 pp_out_channels: int = 1024, bin_sizes=(1, 2, 3, 6),
                 enable_auxiliary_loss: bool = True, align_corners: bool = False):
        super().__init__()
        layers.check_num_classes(num_classes)
        backbone_indices = tuple(backbone_indices)
        if len(backbone_indices) != 2:
            raise ValueError(f"backbone_indices needs (auxiliary, pyramid pooling) indices, "
                             f"got {list(backbone_indices)}")
        self.backbone = backbone
        channels = [backbone.feat_channels[i] for i in backbone_indices]
        self.head = PSPNetHead(num_classes, backbone_indices, channels, pp_out_channels,
                               tuple(bin_sizes), enable_auxiliary_loss, align_corners)
        self.align_corners = align_corners
        self.in_channels = getattr(backbone, "in_channels", 3)

    def forward(self, x):
        logits = self.head(self.backbone(x), with_aux=self.training)
        return layers.resize_logits(self, logits, x, self.align_corners)


class PSPNetHead(nn.Layer):
    def __init__(self, num_classes: int, backbone_indices, backbone_channels,
                 pp_out_channels: int, bin_sizes, enable_auxiliary_loss: bool,
                 align_corners: bool):
        super().__init__()
        self.backbone_indices = backbone_indices
        self.psp_module = PPModule(backbone_channels[1], pp_out_channels, bin_sizes,
                                   dim_reduction=True, align_corners=align_corners)
        self.dropout = nn.Dropout(p=0.1)
        self.conv = nn.Conv2D(pp_out_channels, num_classes, 1)
        self.enable_auxiliary_loss = enable_auxiliary_loss
        if enable_auxiliary_loss:
            self.auxlayer = layers.AuxLayer(backbone_channels[0], backbone_channels[0] // 4,
                                            num_classes)
        layers.init_conv_bn(self)

    def forward(self, feat_list, with_aux: bool = True):
        x = self.psp_module(feat_list[self.backbone_indices[1]])
        logits = [self.conv(self.dropout(x))]
        if self.enable_auxiliary_loss and with_aux:
            logits.append(self.auxlayer(feat_list[self.backbone_indices[0]]))
        return logits


class PPModule(nn.Layer):
    """Pyramid pooling: for each bin size an adaptive average pool and a 1x1 ConvBNReLU
    (to ``in_channels // len(bin_sizes)`` with ``dim_reduction``), upsampled and concatenated
    with the input (largest bins first, as PaddleSeg), then a 3x3 ConvBNReLU."""

    def __init__(self, in_channels: int, out_channels: int, bin_sizes, dim_reduction: bool,
                 align_corners: bool):
        super().__init__()
        self.bin_sizes = bin_sizes
        inter_channels = in_channels // len(bin_sizes) if dim_reduction else in_channels
        self.stages = nn.LayerList([
            nn.Sequential(nn.AdaptiveAvgPool2D(output_size=(size, size)),
                          layers.ConvBNReLU(in_channels, inter_channels, 1))
            for size in bin_sizes])
        self.conv_bn_relu2 = layers.ConvBNReLU(in_channels + inter_channels * len(bin_sizes),
                                               out_channels, 3, padding=1)
        self.align_corners = align_corners

    def forward(self, x):
        pooled = [layers.resize_to(stage(x), x, self.align_corners) for stage in self.stages]
        return self.conv_bn_relu2(paddle.concat([x, *pooled[::-1]], axis=1))
