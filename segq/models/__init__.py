"""Segmentation models. Importing this package registers every model in ``MODELS``."""
from segq.models import bisenetv2  # noqa: F401  (registers BiSeNetV2)
from segq.models import layers  # noqa: F401
