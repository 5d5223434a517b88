"""Evaluate a dygraph model over a dataset -> :class:`EvalResult`."""
from __future__ import annotations

import numpy as np
import paddle
from tqdm import tqdm

from ..config import TestConfig
from ..metrics import EvalResult, confusion_matrix
from .predict import infer_logits, restore_original_size


@paddle.no_grad()
def evaluate(model: paddle.nn.Layer, dataset, test_cfg: TestConfig | None = None,
             num_workers: int = 0, progress: bool = True) -> EvalResult:
    from ..data.loader import build_eval_loader

    was_training = model.training
    model.eval()
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    n = 0
    try:
        for sample in tqdm(build_eval_loader(dataset, num_workers), total=len(dataset),
                           desc="eval", disable=not progress, leave=False):
            x = paddle.to_tensor(sample["img"][None])
            logits = restore_original_size(infer_logits(model, x, test_cfg),
                                           sample.get("trans_info"))
            pred = paddle.argmax(logits, axis=1).numpy()[0]
            label = sample.get("ori_label", sample["label"])
            confusion += confusion_matrix(pred, label, dataset.num_classes,
                                          dataset.ignore_index)
            n += 1
    finally:
        model.train(was_training)
    return EvalResult.from_confusion(confusion, n)
