"""STDC backbones (STDC1, STDC2): Short-Term Dense Concatenate networks.

Fan, Mingyuan, et al. "Rethinking BiSeNet For Real-time Semantic Segmentation." CVPR 2021.
https://arxiv.org/abs/2104.13188

Same structure and sublayer names as PaddleSeg's ``STDCNet`` (``features.{i}``, each block's
``conv_list``/``avd_layer``/``skip``, convolutions as ``conv``/``bn``/``relu``), so its ImageNet
weights (PaddleSeg's ``PP_STDCNet1``/``PP_STDCNet2`` archives, unpacked) load strictly. Unlike
PaddleSeg the convolutions are Kaiming-initialized (segq trains from scratch where no weights
are given) and BatchNorm is the plain ``nn.BatchNorm2D`` (same parameter names as PaddleSeg's
``SyncBatchNorm``).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models.layers import init_conv_bn
from segq.registry import BACKBONES


class ConvBNRelu(nn.Layer):
    """Conv (no bias, 'same' padding for odd kernels), BN, ReLU, named like PaddleSeg's STDC."""

    def __init__(self, in_planes: int, out_planes: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(in_planes, out_planes, kernel, stride=stride,
                              padding=kernel // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_planes)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def _block_convs(in_planes: int, out_planes: int, block_num: int, stride: int) -> nn.LayerList:
    """The STDC module's conv chain: a 1x1 to out/2, then 3x3s halving the width each step
    (out/4, out/8, ...), the last one keeping it, so the concatenation has ``out_planes``."""
    convs = nn.LayerList()
    for idx in range(block_num):
        if idx == 0:
            convs.append(ConvBNRelu(in_planes, out_planes // 2, kernel=1))
        elif idx == 1 and block_num == 2:
            convs.append(ConvBNRelu(out_planes // 2, out_planes // 2, stride=stride))
        elif idx == 1:
            convs.append(ConvBNRelu(out_planes // 2, out_planes // 4, stride=stride))
        elif idx < block_num - 1:
            convs.append(ConvBNRelu(out_planes // 2 ** idx, out_planes // 2 ** (idx + 1)))
        else:
            convs.append(ConvBNRelu(out_planes // 2 ** idx, out_planes // 2 ** idx))
    return convs


class CatBottleneck(nn.Layer):
    """STDC module, concatenation fusion: the outputs of all convs in the chain are
    concatenated; with stride 2 the first output is downsampled by a depthwise conv before
    the chain continues (``avd_layer``) and by an average pool on the skip path."""

    def __init__(self, in_planes: int, out_planes: int, block_num: int = 3, stride: int = 1):
        super().__init__()
        if block_num < 2:
            raise ValueError(f"block_num must be >= 2, got {block_num}")
        self.stride = stride
        if stride == 2:
            half = out_planes // 2
            self.avd_layer = _downsample_dw(half)
            self.skip = nn.AvgPool2D(kernel_size=3, stride=2, padding=1)
        # the stride-2 block downsamples in avd_layer, so its chain itself has stride 1
        self.conv_list = _block_convs(in_planes, out_planes, block_num, 1)

    def forward(self, x):
        out1 = self.conv_list[0](x)
        out = self.avd_layer(out1) if self.stride == 2 else out1
        outs = []
        for conv in self.conv_list[1:]:
            out = conv(out)
            outs.append(out)
        if self.stride == 2:
            out1 = self.skip(out1)
        return paddle.concat([out1] + outs, axis=1)


def _downsample_dw(channels: int) -> nn.Sequential:
    """Stride-2 depthwise 3x3 conv + BN (PaddleSeg's ``avd_layer``, same parameter names)."""
    return nn.Sequential(
        nn.Conv2D(channels, channels, 3, stride=2, padding=1, groups=channels, bias_attr=False),
        nn.BatchNorm2D(channels))


class AddBottleneck(nn.Layer):
    """STDC module, additive fusion: the concatenated chain outputs plus a (projected) skip."""

    def __init__(self, in_planes: int, out_planes: int, block_num: int = 3, stride: int = 1):
        super().__init__()
        if block_num < 2:
            raise ValueError(f"block_num must be >= 2, got {block_num}")
        self.stride = stride
        if stride == 2:
            half = out_planes // 2
            self.avd_layer = _downsample_dw(half)
            self.skip = nn.Sequential(
                nn.Conv2D(in_planes, in_planes, 3, stride=2, padding=1, groups=in_planes,
                          bias_attr=False),
                nn.BatchNorm2D(in_planes),
                nn.Conv2D(in_planes, out_planes, 1, bias_attr=False),
                nn.BatchNorm2D(out_planes))
        self.conv_list = _block_convs(in_planes, out_planes, block_num, 1)

    def forward(self, x):
        outs = []
        out = x
        for idx, conv in enumerate(self.conv_list):
            out = conv(out)
            if idx == 0 and self.stride == 2:
                out = self.avd_layer(out)
            outs.append(out)
        skip = self.skip(x) if self.stride == 2 else x
        return paddle.concat(outs, axis=1) + skip


class STDCNet(nn.Layer):
    """STDC network returning its five stage outputs.

    Args:
        base: width of stage 2 (stage 1 has ``base // 2``; stages 3-5 ``4, 8, 16 x base``).
        layers: number of STDC modules in stages 3, 4 and 5 (the first of each has stride 2).
        block_num: convolutions per STDC module.
        block_type: ``"cat"`` (the paper's STDC module) or ``"add"``.
        in_channels: channels of the input image.

    ``forward(x)`` returns ``[x2, x4, x8, x16, x32]`` (strides 2 to 32) with channels
    ``feat_channels == [base // 2, base, 4 * base, 8 * base, 16 * base]``.
    """

    def __init__(self, base: int = 64, layers=(4, 5, 3), block_num: int = 4,
                 block_type: str = "cat", in_channels: int = 3):
        super().__init__()
        blocks = {"cat": CatBottleneck, "add": AddBottleneck}
        if block_type not in blocks:
            raise ValueError(f"block_type must be one of {sorted(blocks)}, got {block_type!r}")
        self.layers = [int(n) for n in layers]
        if len(self.layers) != 3 or min(self.layers) < 1:
            raise ValueError(f"layers must give 3 positive block counts, got {list(layers)}")
        self.in_channels = in_channels
        self.feat_channels = [base // 2, base, base * 4, base * 8, base * 16]
        self.features = self._make_layers(in_channels, base, self.layers, block_num,
                                          blocks[block_type])
        # index ranges of stages 3, 4, 5 in self.features
        ends = [2 + sum(self.layers[:i + 1]) for i in range(3)]
        self._stage_bounds = list(zip([2] + ends[:2], ends))
        init_conv_bn(self)

    @staticmethod
    def _make_layers(in_channels, base, stage_layers, block_num, block):
        features = [ConvBNRelu(in_channels, base // 2, 3, 2), ConvBNRelu(base // 2, base, 3, 2)]
        for i, n in enumerate(stage_layers):
            out_planes = base * 2 ** (i + 2)
            in_planes = base if i == 0 else out_planes // 2
            for j in range(n):
                features.append(block(in_planes if j == 0 else out_planes, out_planes,
                                      block_num, 2 if j == 0 else 1))
        return nn.Sequential(*features)

    def forward(self, x):
        x = self.features[0](x)
        feats = [x]
        x = self.features[1](x)
        feats.append(x)
        for start, end in self._stage_bounds:
            for i in range(start, end):
                x = self.features[i](x)
            feats.append(x)
        return feats


@BACKBONES.register
class STDC1(STDCNet):
    """STDC1 (STDC813: 2-2-2 modules in stages 3-5); see :class:`STDCNet`."""

    def __init__(self, block_num: int = 4, block_type: str = "cat", in_channels: int = 3):
        super().__init__(64, (2, 2, 2), block_num=block_num, block_type=block_type,
                         in_channels=in_channels)


@BACKBONES.register
class STDC2(STDCNet):
    """STDC2 (STDC1446: 4-5-3 modules in stages 3-5); see :class:`STDCNet`."""

    def __init__(self, block_num: int = 4, block_type: str = "cat", in_channels: int = 3):
        super().__init__(64, (4, 5, 3), block_num=block_num, block_type=block_type,
                         in_channels=in_channels)
