"""Segmentation losses. Importing this package registers every loss in ``LOSSES``.

Every loss is called as ``loss(logits [N, C, H, W] float32, label [N, H, W] int64)`` and
returns a 0-d Tensor; pixels labelled ``ignore_index`` contribute nothing, and a batch with
no valid pixel gives 0 (never NaN).
"""
from segq.losses import cross_entropy  # noqa: F401  (CrossEntropyLoss)
from segq.losses import dice  # noqa: F401  (DiceLoss)
from segq.losses import mixed  # noqa: F401  (MixedLoss)
from segq.losses import ohem  # noqa: F401  (OhemCrossEntropyLoss)
