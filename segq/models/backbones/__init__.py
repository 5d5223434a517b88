"""Backbones. Importing this package registers every backbone in ``BACKBONES``.

A backbone's ``forward(x)`` returns a list of feature maps and it has a ``feat_channels``
attribute (their channel counts, same order), which the segmentation heads index with
``backbone_indices``.
"""
from segq.models.backbones import hrnet  # noqa: F401  (registers HRNet, HRNet_W18)
from segq.models.backbones import resnet_vd  # noqa: F401  (registers ResNet18_vd, ResNet50_vd)
from segq.models.backbones import stdcnet  # noqa: F401  (registers STDC1, STDC2)
