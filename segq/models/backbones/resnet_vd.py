"""ResNet-vd backbones (ResNet18_vd, ResNet50_vd) with dilated last stages for segmentation.

He, Tong, et al. "Bag of Tricks for Image Classification with Convolutional Neural Networks."
CVPR 2019. https://arxiv.org/abs/1812.01187 (the "D" variant: a deep 3x3 stem instead of the
7x7 conv, and an average pool before the 1x1 projection of down-sampling shortcuts).

Dilation instead of striding in the last stages (Chen et al., DeepLab) keeps the output stride
at 8 or 16; ``multi_grid`` further multiplies the dilation of the last stage's blocks.

Same structure and sublayer names as PaddleSeg's ``ResNet_vd`` (``conv1_1``..``conv1_3``,
``bb_{stage}_{block}``, ``_conv``/``_batch_norm``), so its ImageNet weights load strictly.
"""
from __future__ import annotations

import paddle.nn as nn

from segq.models.layers import init_conv_bn
from segq.registry import BACKBONES

# blocks per stage
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# dilation per stage index (0-3) for each output stride
DILATIONS = {8: {2: 2, 3: 4}, 16: {3: 2}, 32: {}}


class ConvBNLayer(nn.Layer):
    """Conv (symmetric padding, dilation for 3x3 only), BN, optional ReLU; in ``is_vd_mode`` a
    2x2 average pool (ceil mode) comes first, so a strided shortcut sees every input pixel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, is_vd_mode: bool = False,
                 act: str | None = None):
        super().__init__()
        if dilation != 1 and kernel_size != 3:
            raise ValueError(f"dilation {dilation} needs kernel_size 3, got {kernel_size}")
        if act not in (None, "relu"):
            raise ValueError(f"act must be None or 'relu', got {act!r}")
        self.is_vd_mode = is_vd_mode
        if is_vd_mode:
            self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True)
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                               padding=dilation if dilation != 1 else (kernel_size - 1) // 2,
                               dilation=dilation, groups=groups, bias_attr=False)
        self._batch_norm = nn.BatchNorm2D(out_channels)
        self._act = nn.ReLU() if act == "relu" else None

    def forward(self, x):
        if self.is_vd_mode:
            x = self._pool2d_avg(x)
        x = self._batch_norm(self._conv(x))
        return self._act(x) if self._act is not None else x


class BasicBlock(nn.Layer):
    """Two 3x3 convs with an identity or projected shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int, dilation: int = 1,
                 shortcut: bool = True, if_first: bool = False):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, out_channels, 3, stride=stride, dilation=dilation,
                                 act="relu")
        self.conv1 = ConvBNLayer(out_channels, out_channels, 3, dilation=dilation)
        self.shortcut = shortcut
        if not shortcut:
            self.short = ConvBNLayer(in_channels, out_channels, 1,
                                     is_vd_mode=not (if_first or stride == 1))
        self.relu = nn.ReLU()

    def forward(self, x):
        short = x if self.shortcut else self.short(x)
        return self.relu(short + self.conv1(self.conv0(x)))


class BottleneckBlock(nn.Layer):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand x4, with a shortcut (ResNet-50+)."""

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int, dilation: int = 1,
                 shortcut: bool = True, if_first: bool = False):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, out_channels, 1, act="relu")
        self.conv1 = ConvBNLayer(out_channels, out_channels, 3, stride=stride, dilation=dilation,
                                 act="relu")
        self.conv2 = ConvBNLayer(out_channels, out_channels * 4, 1)
        self.shortcut = shortcut
        if not shortcut:
            self.short = ConvBNLayer(in_channels, out_channels * 4, 1,
                                     is_vd_mode=not (if_first or stride == 1))
        self.relu = nn.ReLU()

    def forward(self, x):
        short = x if self.shortcut else self.short(x)
        return self.relu(short + self.conv2(self.conv1(self.conv0(x))))


class ResNet_vd(nn.Layer):
    """ResNet-vd returning the feature maps of its four stages.

    Args:
        layers: depth, one of 18, 34, 50, 101.
        output_stride: stride of the last feature map: 8 (stages 3 and 4 dilated by 2 and 4),
            16 (stage 4 dilated by 2) or 32 (no dilation).
        multi_grid: per-block dilation multipliers of stage 4 (one per block), e.g. (1, 2, 4).
        in_channels: channels of the input image.

    ``forward(x)`` returns ``[c2, c3, c4, c5]`` at strides 4, 8, then 16/8 and 32/16/8 per
    ``output_stride``; ``feat_channels`` lists their channels ((64, 128, 256, 512) for
    ResNet-18/34, (256, 512, 1024, 2048) for ResNet-50/101).
    """

    def __init__(self, layers: int = 50, output_stride: int = 8, multi_grid=(1, 1, 1),
                 in_channels: int = 3):
        super().__init__()
        if layers not in DEPTHS:
            raise ValueError(f"layers must be one of {sorted(DEPTHS)}, got {layers}")
        if output_stride not in DILATIONS:
            raise ValueError(f"output_stride must be one of {sorted(DILATIONS)}, "
                             f"got {output_stride}")
        depth = DEPTHS[layers]
        multi_grid = tuple(multi_grid)
        if len(multi_grid) != depth[3]:
            raise ValueError(f"multi_grid needs one entry per block of the last stage "
                             f"({depth[3]}), got {list(multi_grid)}")
        block_cls = BottleneckBlock if layers >= 50 else BasicBlock
        num_filters = (64, 128, 256, 512)
        self.feat_channels = [c * block_cls.expansion for c in num_filters]
        self.layers = layers
        self.output_stride = output_stride
        self.in_channels = in_channels

        self.conv1_1 = ConvBNLayer(in_channels, 32, 3, stride=2, act="relu")
        self.conv1_2 = ConvBNLayer(32, 32, 3, act="relu")
        self.conv1_3 = ConvBNLayer(32, 64, 3, act="relu")
        self.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

        dilations = DILATIONS[output_stride]
        self.stage_list: list[list[nn.Layer]] = []  # blocks are registered by add_sublayer
        channels = 64
        for stage, (n_blocks, filters) in enumerate(zip(depth, num_filters)):
            blocks = []
            for i in range(n_blocks):
                dilation = dilations.get(stage, 1)
                if stage == 3:
                    dilation *= multi_grid[i]
                # A dilated stage keeps its resolution: no stride.
                stride = 2 if i == 0 and stage != 0 and dilation == 1 else 1
                block = block_cls(channels, filters, stride=stride, dilation=dilation,
                                  shortcut=i > 0, if_first=stage == 0 and i == 0)
                blocks.append(self.add_sublayer(f"bb_{stage}_{i}", block))
                channels = filters * block_cls.expansion
            self.stage_list.append(blocks)
        init_conv_bn(self)

    def forward(self, x):
        x = self.pool2d_max(self.conv1_3(self.conv1_2(self.conv1_1(x))))
        feats = []
        for blocks in self.stage_list:
            for block in blocks:
                x = block(x)
            feats.append(x)
        return feats


@BACKBONES.register
class ResNet18_vd(ResNet_vd):
    """ResNet-18-vd (basic blocks, 2-2-2-2); see :class:`ResNet_vd`."""

    def __init__(self, output_stride: int = 8, multi_grid=(1, 1), in_channels: int = 3):
        super().__init__(18, output_stride=output_stride, multi_grid=multi_grid,
                         in_channels=in_channels)


@BACKBONES.register
class ResNet50_vd(ResNet_vd):
    """ResNet-50-vd (bottleneck blocks, 3-4-6-3); see :class:`ResNet_vd`."""

    def __init__(self, output_stride: int = 8, multi_grid=(1, 1, 1), in_channels: int = 3):
        super().__init__(50, output_stride=output_stride, multi_grid=multi_grid,
                         in_channels=in_channels)
