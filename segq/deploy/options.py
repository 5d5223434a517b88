"""How a deployed model is run: device, precision, threads, batching, TensorRT settings."""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

DEVICES = ("cpu", "gpu")
BACKENDS = ("paddle", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"PredictorOptions.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class PredictorOptions:
    """Settings of a :class:`segq.deploy.Predictor`.

    Args:
        device: ``cpu`` (Paddle Inference with oneDNN) or ``gpu`` (Paddle Inference with
            TensorRT; needs a CUDA + TensorRT build of paddlepaddle-gpu).
        backend: ``paddle`` (Paddle Inference), or ``onnxruntime`` / ``openvino`` on cpu,
            which run the export's ONNX model (``deploy/python/export_onnx.py``).
        precision: ``fp32``; ``fp16`` (gpu only, TensorRT half); ``int8`` (runs the INT8 ops of
            a quantized export, whose deploy.yaml has a ``Quant:`` section).
        cpu_threads: math library threads on cpu.
        batch_size: images per run (consecutive images of one preprocessed size share a run).
        trt_shape_file: where TensorRT's dynamic shape ranges are collected on the first run
            and read by later runs (gpu only; ``None``: a temporary file per predictor).
        min_subgraph_size: the fewest ops a subgraph needs to be handed to TensorRT (gpu only).
    """

    device: str = "cpu"
    backend: str = "paddle"
    precision: str = "fp32"
    cpu_threads: int = 2
    batch_size: int = 1
    trt_shape_file: str | os.PathLike | None = None
    min_subgraph_size: int = 3

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"PredictorOptions.device must be one of {DEVICES}, "
                             f"got {self.device!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"PredictorOptions.backend must be one of {BACKENDS}, "
                             f"got {self.backend!r}")
        if self.backend != "paddle" and self.device != "cpu":
            raise ValueError(f"PredictorOptions: backend {self.backend!r} runs on device "
                             f"'cpu' here; the gpu path is Paddle Inference with TensorRT")
        if self.precision not in PRECISIONS:
            raise ValueError(f"PredictorOptions.precision must be one of {PRECISIONS}, "
                             f"got {self.precision!r}")
        if self.precision == "fp16" and self.device != "gpu":
            # oneDNN's bf16 is not fp16, and this CPU path has no half-precision kernels
            raise ValueError("PredictorOptions: precision 'fp16' runs through TensorRT and "
                             "needs device 'gpu'; on cpu use 'fp32' or 'int8'")
        for name in ("cpu_threads", "batch_size", "min_subgraph_size"):
            _positive_int(name, getattr(self, name))
        if self.trt_shape_file is not None:
            if self.device != "gpu":
                raise ValueError(f"PredictorOptions.trt_shape_file ({self.trt_shape_file!r}) "
                                 f"holds TensorRT shape ranges and needs device 'gpu', "
                                 f"got device {self.device!r}")
            if (not isinstance(self.trt_shape_file, (str, os.PathLike))
                    or not os.fspath(self.trt_shape_file)):
                raise ValueError(f"PredictorOptions.trt_shape_file must be a file path, "
                                 f"got {self.trt_shape_file!r}")
