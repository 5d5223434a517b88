"""BiSeNet V2.

Yu, Changqian, et al. "BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time
Semantic Segmentation." International Journal of Computer Vision 129 (2021): 3051-3068.
https://arxiv.org/abs/2004.02147

Same structure and parameter names as PaddleSeg's ``BiSeNetV2`` (so its checkpoints load), with
two export-driven changes: the sigmoids are :class:`~segq.models.layers.Sigmoid` layers (Paddle
3.3.1's ``F.sigmoid``/``nn.Sigmoid`` do not build under the legacy exporter) and resizes read
the runtime shape so a dynamic-shape export works.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models import layers
from segq.registry import MODELS


@MODELS.register
class BiSeNetV2(nn.Layer):
    """BiSeNet V2: a wide shallow detail branch and a narrow deep semantic branch fused by
    bilateral guided aggregation (BGA).

    Args:
        num_classes: number of output classes.
        lambd: width factor of the semantic branch's first two stages (paper: 1/4).
        align_corners: passed to every bilinear resize.
        in_channels: channels of the input image.

    ``forward(x)`` returns ``[main]`` in eval mode and ``[main, aux1, aux2, aux3, aux4]`` in
    training mode (auxiliary heads on semantic stages 2, 3, 4 and 5), each of shape
    ``[N, num_classes, H, W]`` at the input's size.
    """

    def __init__(self, num_classes: int, lambd: float = 0.25, align_corners: bool = False,
                 in_channels: int = 3):
        super().__init__()
        layers.check_num_classes(num_classes)
        db_channels = (64, 64, 128)
        # The paper scales only the stem and stage 3 by lambda; stages 4 and 5 stay 64 and 128.
        c1, c3, c4, c5 = int(64 * lambd), int(128 * lambd), 64, 128
        mid_channels = 128

        self.db = DetailBranch(in_channels, db_channels)
        self.sb = SemanticBranch(in_channels, (c1, c3, c4, c5))
        self.bga = BGA(mid_channels, align_corners)
        self.aux_head1 = SegHead(c1, c1, num_classes)
        self.aux_head2 = SegHead(c3, c3, num_classes)
        self.aux_head3 = SegHead(c4, c4, num_classes)
        self.aux_head4 = SegHead(c5, c5, num_classes)
        self.head = SegHead(mid_channels, mid_channels, num_classes)
        self.align_corners = align_corners
        self.in_channels = in_channels  # read by the exporter for its default input shape
        layers.init_conv_bn(self)

    def forward(self, x):
        detail = self.db(x)
        feat2, feat3, feat4, feat5, semantic = self.sb(x)
        logits = [self.head(self.bga(detail, semantic))]
        if self.training:
            # Auxiliary heads only feed the training loss; skipping them keeps inference lean.
            logits += [self.aux_head1(feat2), self.aux_head2(feat3),
                       self.aux_head3(feat4), self.aux_head4(feat5)]
        return layers.resize_logits(self, logits, x, self.align_corners)


class StemBlock(nn.Layer):
    """Stride-4 stem: a strided conv, then a conv path and a max-pool path concatenated."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.conv = layers.ConvBNReLU(in_dim, out_dim, 3, stride=2)
        self.left = nn.Sequential(
            layers.ConvBNReLU(out_dim, out_dim // 2, 1),
            layers.ConvBNReLU(out_dim // 2, out_dim, 3, stride=2))
        self.right = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.fuse = layers.ConvBNReLU(out_dim * 2, out_dim, 3)

    def forward(self, x):
        x = self.conv(x)
        return self.fuse(paddle.concat([self.left(x), self.right(x)], axis=1))


class ContextEmbeddingBlock(nn.Layer):
    """Global average pooling, BN and a 1x1 conv, added back to the features."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2D(1)
        self.bn = nn.BatchNorm2D(in_dim)
        self.conv_1x1 = layers.ConvBNReLU(in_dim, out_dim, 1)
        self.conv_3x3 = nn.Conv2D(out_dim, out_dim, 3, 1, 1)

    def forward(self, x):
        context = self.conv_1x1(self.bn(self.gap(x)))
        return self.conv_3x3(context + x)  # broadcast over H, W


class GatherAndExpansionLayer1(nn.Layer):
    """Gather-and-expansion layer, stride 1, with an identity shortcut."""

    def __init__(self, in_dim: int, out_dim: int, expand: int):
        super().__init__()
        expand_dim = expand * in_dim
        self.conv = nn.Sequential(
            layers.ConvBNReLU(in_dim, in_dim, 3),
            layers.DepthwiseConvBN(in_dim, expand_dim, 3),
            layers.ConvBN(expand_dim, out_dim, 1))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x) + x)


class GatherAndExpansionLayer2(nn.Layer):
    """Gather-and-expansion layer, stride 2, with a depthwise + pointwise shortcut."""

    def __init__(self, in_dim: int, out_dim: int, expand: int):
        super().__init__()
        expand_dim = expand * in_dim
        self.branch_1 = nn.Sequential(
            layers.ConvBNReLU(in_dim, in_dim, 3),
            layers.DepthwiseConvBN(in_dim, expand_dim, 3, stride=2),
            layers.DepthwiseConvBN(expand_dim, expand_dim, 3),
            layers.ConvBN(expand_dim, out_dim, 1))
        self.branch_2 = nn.Sequential(
            layers.DepthwiseConvBN(in_dim, in_dim, 3, stride=2),
            layers.ConvBN(in_dim, out_dim, 1))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.branch_1(x) + self.branch_2(x))


class DetailBranch(nn.Layer):
    """Wide, shallow branch at 1/8 resolution that keeps spatial detail."""

    def __init__(self, in_channels: int, channels=(64, 64, 128)):
        super().__init__()
        c1, c2, c3 = channels
        self.convs = nn.Sequential(
            layers.ConvBNReLU(in_channels, c1, 3, stride=2),  # stage 1: 1/2
            layers.ConvBNReLU(c1, c1, 3),
            layers.ConvBNReLU(c1, c2, 3, stride=2),  # stage 2: 1/4
            layers.ConvBNReLU(c2, c2, 3),
            layers.ConvBNReLU(c2, c2, 3),
            layers.ConvBNReLU(c2, c3, 3, stride=2),  # stage 3: 1/8
            layers.ConvBNReLU(c3, c3, 3),
            layers.ConvBNReLU(c3, c3, 3))

    def forward(self, x):
        return self.convs(x)


class SemanticBranch(nn.Layer):
    """Narrow, deep branch down to 1/32 resolution for context.

    Returns the features of stages 2-5 (for the auxiliary heads) and the context-embedded
    output."""

    def __init__(self, in_channels: int, channels):
        super().__init__()
        c1, c3, c4, c5 = channels
        self.stem = StemBlock(in_channels, c1)
        self.stage3 = nn.Sequential(
            GatherAndExpansionLayer2(c1, c3, 6),
            GatherAndExpansionLayer1(c3, c3, 6))
        self.stage4 = nn.Sequential(
            GatherAndExpansionLayer2(c3, c4, 6),
            GatherAndExpansionLayer1(c4, c4, 6))
        self.stage5_4 = nn.Sequential(
            GatherAndExpansionLayer2(c4, c5, 6),
            GatherAndExpansionLayer1(c5, c5, 6),
            GatherAndExpansionLayer1(c5, c5, 6),
            GatherAndExpansionLayer1(c5, c5, 6))
        self.ce = ContextEmbeddingBlock(c5, c5)

    def forward(self, x):
        stage2 = self.stem(x)
        stage3 = self.stage3(stage2)
        stage4 = self.stage4(stage3)
        stage5 = self.stage5_4(stage4)
        return stage2, stage3, stage4, stage5, self.ce(stage5)


class BGA(nn.Layer):
    """Bilateral guided aggregation: each branch gates the other at its own resolution."""

    def __init__(self, out_dim: int, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners
        self.db_branch_keep = nn.Sequential(
            layers.DepthwiseConvBN(out_dim, out_dim, 3),
            nn.Conv2D(out_dim, out_dim, 1))
        self.db_branch_down = nn.Sequential(
            layers.ConvBN(out_dim, out_dim, 3, stride=2),
            nn.AvgPool2D(kernel_size=3, stride=2, padding=1))
        self.sb_branch_keep = nn.Sequential(
            layers.DepthwiseConvBN(out_dim, out_dim, 3),
            nn.Conv2D(out_dim, out_dim, 1),
            layers.Sigmoid())
        self.sb_branch_up = layers.ConvBN(out_dim, out_dim, 3)
        self.up_sigmoid = layers.Sigmoid()
        self.conv = layers.ConvBN(out_dim, out_dim, 3)

    def forward(self, dfm, sfm):
        db_keep = self.db_branch_keep(dfm)  # 1/8
        db_down = self.db_branch_down(dfm)  # 1/32
        sb_keep = self.sb_branch_keep(sfm)  # 1/32, gate in (0, 1)
        sb_up = self.up_sigmoid(
            layers.resize_to(self.sb_branch_up(sfm), db_keep, self.align_corners))
        detail = db_keep * sb_up
        semantic = layers.resize_to(db_down * sb_keep, detail, self.align_corners)
        return self.conv(detail + semantic)


class SegHead(nn.Layer):
    """3x3 ConvBNReLU, dropout, 1x1 classifier."""

    def __init__(self, in_dim: int, mid_dim: int, num_classes: int):
        super().__init__()
        self.conv_3x3 = nn.Sequential(layers.ConvBNReLU(in_dim, mid_dim, 3), nn.Dropout(0.1))
        self.conv_1x1 = nn.Conv2D(mid_dim, num_classes, 1, 1)

    def forward(self, x):
        return self.conv_1x1(self.conv_3x3(x))
