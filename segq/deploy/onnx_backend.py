"""ONNX Runtime and OpenVINO backends: run an ONNX model (or an OpenVINO IR ``.xml``) on CPU.

Both take the thread count like the Paddle backend, so latencies compare on equal terms.
OpenVINO is pinned to f32 inference precision: on CPUs with AMX or AVX-512 BF16 it would
otherwise run "FP32" models in bf16, a different accuracy and speed than the row claims.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _existing(model_file: str | os.PathLike) -> Path:
    path = Path(model_file)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return path


def ort_session(model: str | os.PathLike | bytes, cpu_threads: int = 1, optimize: bool = True,
                **settings):
    """An ONNX Runtime CPU session as every segq caller wants one: ``cpu_threads`` intra-op
    threads, sequential execution, errors-only logging, all graph optimizations unless
    ``optimize`` is False (probes that read intermediate tensors need the graph as written);
    ``settings`` sets further ``SessionOptions`` attributes (profiling, optimized_model_filepath).
    ``model`` is a file or a serialized ModelProto."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(cpu_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.log_severity_level = 3
    for name, value in settings.items():
        setattr(options, name, value)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxRuntimeModel:
    """ONNX Runtime's CPU execution provider, all graph optimizations, ``cpu_threads``
    intra-op threads."""

    def __init__(self, model_file: str | os.PathLike, cpu_threads: int = 2):
        self.model_file = _existing(model_file)
        self._session = ort_session(self.model_file, cpu_threads)
        self._input = self._session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        feed = {self._input: np.ascontiguousarray(batch, dtype=np.float32)}
        return self._session.run(None, feed)[0]


class OpenVINOModel:
    """OpenVINO on CPU with ``cpu_threads`` threads and one stream (latency mode). The
    model is compiled once per input shape, static shapes being OpenVINO's fast path."""

    def __init__(self, model_file: str | os.PathLike, cpu_threads: int = 2):
        import openvino as ov

        self.model_file = _existing(model_file)
        self._core = ov.Core()
        self._model = self._core.read_model(str(self.model_file))
        self._config = {"INFERENCE_NUM_THREADS": int(cpu_threads), "NUM_STREAMS": 1,
                        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        self._requests: dict[tuple[int, ...], object] = {}

    def _request(self, shape: tuple[int, ...]):
        if shape not in self._requests:
            model = self._model.clone()
            model.reshape({model.inputs[0].any_name: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._config)
            self._requests[shape] = compiled.create_infer_request()
        return self._requests[shape]

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        request = self._request(batch.shape)
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()
