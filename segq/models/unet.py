"""U-Net.

Ronneberger, Olaf, Philipp Fischer, and Thomas Brox. "U-Net: Convolutional Networks for
Biomedical Image Segmentation." MICCAI 2015. https://arxiv.org/abs/1505.04597

Same structure and sublayer names as PaddleSeg's ``UNet`` (``encode``/``decode``/``cls``), with
'same'-padded convolutions and BatchNorm as PaddleSeg has them. Two differences: convolutions
feeding BatchNorm have no bias (load PaddleSeg checkpoints through
:func:`segq.models.layers.fold_conv_bias_into_bn`), and PaddleSeg registers the classifier
twice (``self.cls = self.conv = ...``), so its checkpoints carry a duplicate ``conv.*`` copy of
``cls.*`` to drop before a strict load.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn

from segq.models import layers
from segq.registry import MODELS


@MODELS.register
class UNet(nn.Layer):
    """U-Net: a 4-level encoder (64-512 channels) and a symmetric decoder with skip connections.

    Args:
        num_classes: number of output classes.
        align_corners: passed to the bilinear upsampling (when ``use_deconv`` is False).
        use_deconv: upsample with 2x2 transposed convolutions instead of bilinear resizing;
            then the input's height and width must be multiples of 16.
        in_channels: channels of the input image.

    ``forward(x)`` returns ``[logits]`` (no auxiliary heads) of shape
    ``[N, num_classes, H, W]``.
    """

    def __init__(self, num_classes: int, align_corners: bool = False, use_deconv: bool = False,
                 in_channels: int = 3):
        super().__init__()
        layers.check_num_classes(num_classes)
        self.encode = Encoder(in_channels)
        self.decode = Decoder(align_corners, use_deconv=use_deconv)
        self.cls = nn.Conv2D(64, num_classes, 3, stride=1, padding=1)
        self.in_channels = in_channels  # read by the exporter for its default input shape
        layers.init_conv_bn(self)

    def forward(self, x):
        x, short_cuts = self.encode(x)
        return [self.cls(self.decode(x, short_cuts))]


class Encoder(nn.Layer):
    """Double 3x3 conv at full resolution, then four (max-pool, double conv) levels."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.double_conv = nn.Sequential(
            layers.ConvBNReLU(in_channels, 64, 3), layers.ConvBNReLU(64, 64, 3))
        down_channels = [[64, 128], [128, 256], [256, 512], [512, 512]]
        self.down_sample_list = nn.LayerList([
            self.down_sampling(cin, cout) for cin, cout in down_channels])

    @staticmethod
    def down_sampling(in_channels: int, out_channels: int) -> nn.Sequential:
        return nn.Sequential(
            nn.MaxPool2D(kernel_size=2, stride=2),
            layers.ConvBNReLU(in_channels, out_channels, 3),
            layers.ConvBNReLU(out_channels, out_channels, 3))

    def forward(self, x):
        short_cuts = []
        x = self.double_conv(x)
        for down_sample in self.down_sample_list:
            short_cuts.append(x)
            x = down_sample(x)
        return x, short_cuts


class Decoder(nn.Layer):
    """Four upsampling levels, each concatenating the encoder feature of the same size."""

    def __init__(self, align_corners: bool, use_deconv: bool = False):
        super().__init__()
        up_channels = [[512, 256], [256, 128], [128, 64], [64, 64]]
        self.up_sample_list = nn.LayerList([
            UpSampling(cin, cout, align_corners, use_deconv) for cin, cout in up_channels])

    def forward(self, x, short_cuts):
        for i, up in enumerate(self.up_sample_list):
            x = up(x, short_cuts[-(i + 1)])
        return x


class UpSampling(nn.Layer):
    """Upsample (bilinear to the skip's size, or a 2x2 transposed conv), concatenate the skip,
    double 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, align_corners: bool,
                 use_deconv: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self.use_deconv = use_deconv
        if use_deconv:
            self.deconv = nn.Conv2DTranspose(in_channels, out_channels // 2, kernel_size=2,
                                             stride=2, padding=0)
            in_channels = in_channels + out_channels // 2
        else:
            in_channels *= 2
        self.double_conv = nn.Sequential(
            layers.ConvBNReLU(in_channels, out_channels, 3),
            layers.ConvBNReLU(out_channels, out_channels, 3))

    def forward(self, x, short_cut):
        if self.use_deconv:
            x = self.deconv(x)
        else:
            x = layers.resize_to(x, short_cut, self.align_corners)
        return self.double_conv(paddle.concat([x, short_cut], axis=1))
