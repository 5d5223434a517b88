"""Segmentation models. Importing this package registers every model in ``MODELS`` and every
backbone in ``BACKBONES``."""
from segq.models import backbones  # noqa: F401  (registers the backbones)
from segq.models import bisenetv2  # noqa: F401  (registers BiSeNetV2)
from segq.models import danet  # noqa: F401  (registers DANet)
from segq.models import deeplab  # noqa: F401  (registers DeepLabV3P)
from segq.models import fcn  # noqa: F401  (registers FCN)
from segq.models import gcnet  # noqa: F401  (registers GCNet)
from segq.models import layers  # noqa: F401
from segq.models import pp_liteseg  # noqa: F401  (registers PPLiteSeg)
from segq.models import pspnet  # noqa: F401  (registers PSPNet)
from segq.models import unet  # noqa: F401  (registers UNet)
