"""The one thing a Predictor asks of an inference engine: run a preprocessed batch; and the
factory that picks the engine an export and the options ask for."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .deploy_file import DeployInfo
    from .options import PredictorOptions


@runtime_checkable
class Backend(Protocol):
    def run(self, batch: np.ndarray) -> np.ndarray:
        """``[N, C, H, W]`` float32 in; the export's output out: ``[N, H, W]`` class ids
        (argmax export) or ``[N, C, H, W]`` probabilities/logits."""
        ...


def create_backend(deploy: DeployInfo, options: PredictorOptions) -> Backend:
    """Paddle Inference (cpu oneDNN / gpu TensorRT), or ONNX Runtime / OpenVINO on the
    export's ONNX model. An INT8 ONNX model is the QDQ graph of a QAT export, so for those
    backends the precision is the export's: int8 needs a quantized export, fp32 a float one."""
    if options.backend == "paddle":
        from .paddle_backend import paddle_backend

        return paddle_backend(deploy, options)
    onnx_file = deploy.require_onnx_file(f"backend {options.backend!r}")
    if options.precision == "fp32" and deploy.is_int8:
        raise ValueError(f"{deploy.deploy_file} is a quantized export, whose ONNX model is "
                         f"INT8: use precision 'int8' with backend {options.backend!r}")
    from .onnx_backend import OnnxRuntimeModel, OpenVINOModel

    runtime = OnnxRuntimeModel if options.backend == "onnxruntime" else OpenVINOModel
    return runtime(onnx_file, options.cpu_threads)
