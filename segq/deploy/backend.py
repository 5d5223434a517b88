"""The one thing a Predictor asks of an inference engine: run a preprocessed batch.

Paddle Inference (``paddle_backend``) implements it today; ONNX Runtime or OpenVINO
backends plug in by providing the same ``run``.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    def run(self, batch: np.ndarray) -> np.ndarray:
        """``[N, C, H, W]`` float32 in; the export's output out: ``[N, H, W]`` class ids
        (argmax export) or ``[N, C, H, W]`` probabilities/logits."""
        ...
