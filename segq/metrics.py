"""Segmentation metrics as pure functions of a confusion matrix.

``confusion[i, j]`` counts pixels of true class ``i`` predicted as ``j``; ignored pixels never
enter it. A class absent from both labels and predictions has IoU NaN and is left out of the
mean (so a small val split without some class is not punished for it).
"""
from __future__ import annotations

import json
from pathlib import Path
from dataclasses import asdict, dataclass, field

import numpy as np


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """Accumulate a ``[num_classes, num_classes]`` int64 confusion matrix."""
    pred = np.asarray(pred).reshape(-1)
    label = np.asarray(label).reshape(-1)
    if pred.shape != label.shape:
        raise ValueError(f"prediction has {pred.size} pixels but label has {label.size}")
    keep = label != ignore_index
    pred, label = pred[keep].astype(np.int64), label[keep].astype(np.int64)
    if label.size and (label.min() < 0 or label.max() >= num_classes):
        bad = np.unique(label[(label < 0) | (label >= num_classes)])
        raise ValueError(f"label values {bad.tolist()} outside [0, {num_classes}) "
                         f"and not ignore_index {ignore_index}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predicted class ids must be in [0, {num_classes})")
    return np.bincount(label * num_classes + pred,
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class EvalResult:
    miou: float
    class_iou: list[float]
    acc: float
    class_acc: list[float]
    kappa: float
    num_images: int
    confusion: list[list[int]] = field(repr=False)

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, num_images: int) -> "EvalResult":
        confusion = np.asarray(confusion, dtype=np.int64)
        tp = np.diag(confusion).astype(np.float64)
        label_area = confusion.sum(axis=1).astype(np.float64)
        pred_area = confusion.sum(axis=0).astype(np.float64)
        union = label_area + pred_area - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            class_acc = np.where(pred_area > 0, tp / pred_area, np.nan)
        total = confusion.sum()
        acc = float(tp.sum() / total) if total else 0.0
        expected = float((label_area * pred_area).sum() / total ** 2) if total else 0.0
        kappa = (acc - expected) / (1 - expected) if expected < 1 else 0.0
        valid = ~np.isnan(iou)
        miou = float(iou[valid].mean()) if valid.any() else 0.0
        return cls(miou=miou, class_iou=[float(x) for x in iou], acc=acc,
                   class_acc=[float(x) for x in class_acc], kappa=float(kappa),
                   num_images=int(num_images), confusion=confusion.tolist())

    def to_json_dict(self) -> dict:
        """Keys ``miou``, ``class_iou``, ``acc``, ``kappa``, ``num_images`` (+ extras);
        NaN (a class never seen) becomes ``null``."""
        d = asdict(self)
        for key in ("class_iou", "class_acc"):
            d[key] = [None if np.isnan(x) else x for x in d[key]]
        return d

    def write_json(self, path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json_dict(), f, indent=2)

    def summary(self, class_names: list[str] | None = None) -> str:
        names = class_names or [str(i) for i in range(len(self.class_iou))]
        per_class = ", ".join(f"{n}: {v:.4f}" for n, v in zip(names, self.class_iou))
        return (f"[EVAL] images: {self.num_images}  mIoU: {self.miou:.4f}  "
                f"Acc: {self.acc:.4f}  Kappa: {self.kappa:.4f}\n[EVAL] Class IoU: {per_class}")
