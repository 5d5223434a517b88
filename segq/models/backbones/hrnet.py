"""HRNet (HRNetV2) backbone.

Wang, Jingdong, et al. "Deep High-Resolution Representation Learning for Visual Recognition."
IEEE TPAMI 43.10 (2020): 3349-3364. https://arxiv.org/abs/1908.07919

Parallel branches at strides 4, 8, 16 and 32 exchange information in every module; the output
is all four branches upsampled to stride 4 and concatenated (the HRNetV2 representation).

Same structure, arguments and sublayer names as PaddleSeg's ``HRNet`` (so its ImageNet weights
load strictly), except: no squeeze-and-excitation option (``has_se``; no HRNet variant used here
has it), ``in_channels`` is configurable, activations are ``nn.ReLU`` layers and resizes read
the runtime shape (dynamic-shape export).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models import layers
from segq.registry import BACKBONES


@BACKBONES.register
class HRNet(nn.Layer):
    """HRNet with configurable stages; :class:`HRNet_W18` fixes PaddleSeg's W18 settings.

    Args:
        stage1_num_modules, stage1_num_blocks, stage1_num_channels: stage 1 (one branch of
            bottleneck blocks at stride 4; its output has ``4 * stage1_num_channels[0]``
            channels).
        stageK_num_modules, stageK_num_blocks, stageK_num_channels (K = 2, 3, 4): number of
            high-resolution modules in stage K and, per branch, basic blocks and channels
            (stage K has K branches).
        align_corners: passed to every bilinear resize.
        in_channels: channels of the input image.

    ``forward(x)`` returns ``[feat]``: the four stage-4 branches resized to stride 4 and
    concatenated; ``feat_channels == [sum(stage4_num_channels)]``.
    """

    def __init__(self,
                 stage1_num_modules: int = 1,
                 stage1_num_blocks=(4,),
                 stage1_num_channels=(64,),
                 stage2_num_modules: int = 1,
                 stage2_num_blocks=(4, 4),
                 stage2_num_channels=(18, 36),
                 stage3_num_modules: int = 4,
                 stage3_num_blocks=(4, 4, 4),
                 stage3_num_channels=(18, 36, 72),
                 stage4_num_modules: int = 3,
                 stage4_num_blocks=(4, 4, 4, 4),
                 stage4_num_channels=(18, 36, 72, 144),
                 align_corners: bool = False,
                 in_channels: int = 3):
        super().__init__()
        stages = [(stage2_num_modules, stage2_num_blocks, stage2_num_channels),
                  (stage3_num_modules, stage3_num_blocks, stage3_num_channels),
                  (stage4_num_modules, stage4_num_blocks, stage4_num_channels)]
        for k, (_, blocks, channels) in enumerate(stages, start=2):
            if len(blocks) != k or len(channels) != k:
                raise ValueError(f"stage{k}_num_blocks and stage{k}_num_channels need {k} "
                                 f"entries (one per branch), got {list(blocks)} and "
                                 f"{list(channels)}")
        self.align_corners = align_corners
        self.in_channels = in_channels
        self.feat_channels = [sum(stage4_num_channels)]

        self.conv_layer1_1 = layers.ConvBNReLU(in_channels, 64, 3, stride=2)
        self.conv_layer1_2 = layers.ConvBNReLU(64, 64, 3, stride=2)
        self.la1 = Layer1(64, stage1_num_channels[0], stage1_num_blocks[0], name="layer2")
        if stage1_num_modules != 1:
            raise ValueError(f"stage1_num_modules must be 1, got {stage1_num_modules}")

        self.tr1 = TransitionLayer([stage1_num_channels[0] * 4], stage2_num_channels, name="tr1")
        self.st2 = Stage(stage2_num_channels, stage2_num_modules, stage2_num_blocks,
                         stage2_num_channels, name="st2", align_corners=align_corners)
        self.tr2 = TransitionLayer(stage2_num_channels, stage3_num_channels, name="tr2")
        self.st3 = Stage(stage3_num_channels, stage3_num_modules, stage3_num_blocks,
                         stage3_num_channels, name="st3", align_corners=align_corners)
        self.tr3 = TransitionLayer(stage3_num_channels, stage4_num_channels, name="tr3")
        self.st4 = Stage(stage4_num_channels, stage4_num_modules, stage4_num_blocks,
                         stage4_num_channels, name="st4", align_corners=align_corners)
        layers.init_conv_bn(self)

    def forward(self, x):
        x = self.la1(self.conv_layer1_2(self.conv_layer1_1(x)))
        st2 = self.st2(self.tr1([x]))
        st3 = self.st3(self.tr2(st2))
        st4 = self.st4(self.tr3(st3))
        high = st4[0]
        ups = [layers.resize_to(f, high, self.align_corners) for f in st4[1:]]
        return [paddle.concat([high, *ups], axis=1)]


@BACKBONES.register
class HRNet_W18(HRNet):
    """HRNet-W18 (branch widths 18, 36, 72, 144; 270 output channels); see :class:`HRNet`."""

    def __init__(self, align_corners: bool = False, in_channels: int = 3):
        super().__init__(
            stage1_num_modules=1, stage1_num_blocks=(4,), stage1_num_channels=(64,),
            stage2_num_modules=1, stage2_num_blocks=(4, 4), stage2_num_channels=(18, 36),
            stage3_num_modules=4, stage3_num_blocks=(4, 4, 4),
            stage3_num_channels=(18, 36, 72),
            stage4_num_modules=3, stage4_num_blocks=(4, 4, 4, 4),
            stage4_num_channels=(18, 36, 72, 144),
            align_corners=align_corners, in_channels=in_channels)


class Layer1(nn.Layer):
    """Stage 1: bottleneck blocks on the single stride-4 branch."""

    def __init__(self, num_channels: int, num_filters: int, num_blocks: int, name: str):
        super().__init__()
        self.bottleneck_block_list = []
        for i in range(num_blocks):
            block = BottleneckBlock(num_channels if i == 0 else num_filters * 4, num_filters,
                                    downsample=i == 0)
            self.bottleneck_block_list.append(
                self.add_sublayer(f"bb_{name}_{i + 1}", block))

    def forward(self, x):
        for block in self.bottleneck_block_list:
            x = block(x)
        return x


class TransitionLayer(nn.Layer):
    """Adapts the branch widths to the next stage and adds a new stride-2 branch from the
    lowest-resolution one."""

    def __init__(self, in_channels, out_channels, name: str):
        super().__init__()
        self.conv_bn_func_list = []
        for i, out_ch in enumerate(out_channels):
            conv = None
            if i < len(in_channels):
                if in_channels[i] != out_ch:
                    conv = layers.ConvBNReLU(in_channels[i], out_ch, 3)
            else:
                conv = layers.ConvBNReLU(in_channels[-1], out_ch, 3, stride=2)
            if conv is not None:
                self.add_sublayer(f"transition_{name}_layer_{i + 1}", conv)
            self.conv_bn_func_list.append(conv)

    def forward(self, x):
        outs = []
        for i, conv in enumerate(self.conv_bn_func_list):
            if conv is None:
                outs.append(x[i])
            else:
                outs.append(conv(x[i] if i < len(x) else x[-1]))
        return outs


class Branches(nn.Layer):
    """Basic blocks on each branch independently."""

    def __init__(self, num_blocks, in_channels, out_channels, name: str):
        super().__init__()
        self.basic_block_list = []
        for i, out_ch in enumerate(out_channels):
            blocks = []
            for j in range(num_blocks[i]):
                block = BasicBlock(in_channels[i] if j == 0 else out_ch, out_ch)
                blocks.append(self.add_sublayer(f"bb_{name}_branch_layer_{i + 1}_{j + 1}", block))
            self.basic_block_list.append(blocks)

    def forward(self, x):
        outs = []
        for feat, blocks in zip(x, self.basic_block_list):
            for block in blocks:
                feat = block(feat)
            outs.append(feat)
        return outs


class BottleneckBlock(nn.Layer):
    """1x1, 3x3, 1x1 (x4 channels) with an identity or 1x1-projected shortcut."""

    def __init__(self, num_channels: int, num_filters: int, stride: int = 1,
                 downsample: bool = False):
        super().__init__()
        self.downsample = downsample
        self.conv1 = layers.ConvBNReLU(num_channels, num_filters, 1)
        self.conv2 = layers.ConvBNReLU(num_filters, num_filters, 3, stride=stride)
        self.conv3 = layers.ConvBN(num_filters, num_filters * 4, 1)
        if downsample:
            self.conv_down = layers.ConvBN(num_channels, num_filters * 4, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        residual = self.conv_down(x) if self.downsample else x
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + residual)


class BasicBlock(nn.Layer):
    """Two 3x3 convs with an identity shortcut (every HRNet branch keeps its width)."""

    def __init__(self, num_channels: int, num_filters: int):
        super().__init__()
        if num_channels != num_filters:
            raise ValueError(f"BasicBlock keeps the width: got {num_channels} -> {num_filters}")
        self.conv1 = layers.ConvBNReLU(num_channels, num_filters, 3)
        self.conv2 = layers.ConvBN(num_filters, num_filters, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv2(self.conv1(x)) + x)


class Stage(nn.Layer):
    """A sequence of high-resolution modules."""

    def __init__(self, num_channels, num_modules: int, num_blocks, num_filters, name: str,
                 align_corners: bool = False):
        super().__init__()
        self.stage_func_list = []
        for i in range(num_modules):
            module = HighResolutionModule(num_channels, num_blocks, num_filters,
                                          name=f"{name}_{i + 1}", align_corners=align_corners)
            self.stage_func_list.append(self.add_sublayer(f"stage_{name}_{i + 1}", module))

    def forward(self, x):
        for module in self.stage_func_list:
            x = module(x)
        return x


class HighResolutionModule(nn.Layer):
    """Branches, then multi-resolution fusion."""

    def __init__(self, num_channels, num_blocks, num_filters, name: str,
                 align_corners: bool = False):
        super().__init__()
        self.branches_func = Branches(num_blocks, num_channels, num_filters, name=name)
        self.fuse_func = FuseLayers(num_filters, num_filters, name=name,
                                    align_corners=align_corners)

    def forward(self, x):
        return self.fuse_func(self.branches_func(x))


class FuseLayers(nn.Layer):
    """Each output branch i sums every input branch brought to its resolution: lower
    resolutions by a 1x1 ConvBN and a bilinear upsampling, higher ones by stride-2 3x3 convs."""

    def __init__(self, in_channels, out_channels, name: str, align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self._num_in = len(in_channels)
        self.residual_func_list = []
        for i in range(len(in_channels)):
            for j in range(len(in_channels)):
                if j > i:
                    conv = layers.ConvBN(in_channels[j], out_channels[i], 1)
                    self.residual_func_list.append(
                        self.add_sublayer(f"residual_{name}_layer_{i + 1}_{j + 1}", conv))
                elif j < i:
                    ch = in_channels[j]
                    for k in range(i - j):
                        last = k == i - j - 1
                        if last:
                            conv = layers.ConvBN(ch, out_channels[i], 3, stride=2)
                            ch = out_channels[i]
                        else:
                            conv = layers.ConvBNReLU(ch, out_channels[j], 3, stride=2)
                            ch = out_channels[j]
                        self.residual_func_list.append(self.add_sublayer(
                            f"residual_{name}_layer_{i + 1}_{j + 1}_{k + 1}", conv))
        self.relu = nn.ReLU()

    def forward(self, x):
        outs = []
        idx = 0
        for i in range(self._num_in):
            residual = x[i]
            for j in range(self._num_in):
                if j > i:
                    y = self.residual_func_list[idx](x[j])
                    idx += 1
                    residual = residual + layers.resize_to(y, x[i], self.align_corners)
                elif j < i:
                    y = x[j]
                    for _ in range(i - j):
                        y = self.residual_func_list[idx](y)
                        idx += 1
                    residual = residual + y
            outs.append(self.relu(residual))
        return outs
