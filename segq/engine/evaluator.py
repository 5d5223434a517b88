"""Evaluate a model over a dataset -> :class:`EvalResult`.

``evaluate_with`` takes any function from a sample to a predicted label map, so the dygraph
model and a deployed inference model are scored by the same code.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import paddle
from tqdm import tqdm

from ..config import TestConfig
from ..data.trans_info import restore_original_size
from ..metrics import EvalResult, confusion_matrix
from .predict import infer_logits


def evaluate_with(predict_fn: Callable[[dict], np.ndarray], dataset, num_workers: int = 0,
                  progress: bool = True) -> EvalResult:
    """Score ``predict_fn(sample) -> HxW class ids`` against each sample's label.

    In a data-parallel job every rank scores its share of the images (rank r: r, r + N, ...)
    and the confusion matrices are summed: each rank returns the single-process result."""
    from ..data.loader import build_eval_loader
    from .distributed import current_shard, sum_across_ranks

    rank, world = current_shard()
    indices = range(rank, len(dataset), world)
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    n = 0
    for sample in tqdm(build_eval_loader(dataset, num_workers, indices), total=len(indices),
                       desc="eval", disable=None if progress and rank == 0 else True,
                       leave=False):
        label = sample.get("ori_label", sample["label"])
        pred = predict_fn(sample)
        if pred.shape != label.shape:
            raise ValueError(f"prediction {pred.shape} and label {label.shape} differ in size "
                             f"for {sample.get('label_path', '?')}")
        confusion += confusion_matrix(pred, label, dataset.num_classes, dataset.ignore_index)
        n += 1
    if world > 1:
        totals = sum_across_ranks(np.append(confusion.ravel(), n))
        confusion, n = totals[:-1].reshape(confusion.shape), int(totals[-1])
    return EvalResult.from_confusion(confusion, n)


def dygraph_label_fn(model: paddle.nn.Layer, test_cfg: TestConfig | None = None):
    """``sample -> label map`` for a dygraph model, mapped back to the original size."""

    @paddle.no_grad()
    def predict(sample: dict) -> np.ndarray:
        x = paddle.to_tensor(sample["img"][None])
        logits = restore_original_size(infer_logits(model, x, test_cfg),
                                       sample.get("trans_info"))
        return paddle.argmax(logits, axis=1).numpy()[0]

    return predict


def evaluate(model: paddle.nn.Layer, dataset, test_cfg: TestConfig | None = None,
             num_workers: int = 0, progress: bool = True) -> EvalResult:
    was_training = model.training
    model.eval()
    try:
        return evaluate_with(dygraph_label_fn(model, test_cfg), dataset, num_workers, progress)
    finally:
        model.train(was_training)
