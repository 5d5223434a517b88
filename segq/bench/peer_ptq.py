"""Peer post-training INT8 quantizers: the baselines segq's QAT is compared against.

The deployment benchmark sets a QAT export next to what users would otherwise get
"for free" from an FP32 ONNX model: ONNX Runtime static quantization (QDQ) and
OpenVINO + NNCF post-training quantization. Both take the same calibration batches
(float32 NCHW arrays for the model's single input) and write their result atomically.
"""
from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..deploy.onnx_graph import argmax_logit_path
from .latency import files_size_mb

__all__ = ["model_size_mb", "nncf_quantize", "ort_quantize_static"]


@contextmanager
def _root_warnings_off():
    """ONNX Runtime's QDQ quantizer warns through the *root* logger, once per BatchNorm it
    meets ("Axis 1 is out-of-range for weight ..." when per-channel meets a 1-D weight; it
    quantizes that tensor per tensor, as intended), which configures a stderr handler and
    floods a benchmark's log. Its messages are warnings only; errors still raise."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


class _BatchReader(CalibrationDataReader):
    """Feeds each calibration batch to the model's one input."""

    def __init__(self, input_name: str, batches: list[np.ndarray]):
        self._input_name = input_name
        self._batches = batches
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._batches):
            return None
        batch = self._batches[self._next]
        self._next += 1
        return {self._input_name: batch}

    def __len__(self) -> int:
        return len(self._batches)

    def rewind(self) -> None:
        self._next = 0


def _check_model_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FP32 ONNX model not found: {path}")
    return path


def _calib_list(calib_batches: Iterable[np.ndarray], model: Path) -> list[np.ndarray]:
    # materialised once: both quantizers need the count and may iterate more than once
    batches = [np.ascontiguousarray(b, dtype=np.float32) for b in calib_batches]
    if not batches:
        raise ValueError(f"calib_batches is empty: need at least one calibration batch "
                         f"to quantize {model}")
    return batches


def _onnx_input_name(model_file: Path) -> str:
    # weights are not needed to read the graph inputs
    graph = onnx.load(str(model_file), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    # older opsets also list initializers as graph inputs
    names = [i.name for i in graph.input if i.name not in initializers]
    if len(names) != 1:
        raise ValueError(f"{model_file}: expected exactly one model input, found "
                         f"{len(names)} ({', '.join(names) or 'none'})")
    return names[0]


def _logit_nodes(model_file: Path) -> list[str]:
    """Names of the nodes from the logits to the arg max (named first where unnamed: ONNX
    Runtime excludes nodes by name)."""
    model = onnx.load(str(model_file))
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"segq_node_{i}"
    onnx.save(model, str(model_file))
    return [node.name for node in argmax_logit_path(model.graph)]


def ort_quantize_static(fp32_onnx: str | Path, out_file: str | Path,
                        calib_batches: Iterable[np.ndarray], float_logits: bool = False) -> Path:
    """ONNX Runtime static INT8 quantization (QDQ, per-channel int8 weights, uint8
    activations, MinMax calibration) of ``fp32_onnx`` into ``out_file``; returns it.

    By default ONNX Runtime also quantizes the resize and arg max after the last conv, so
    the arg max reads uint8 logits and gives ties to the lowest class id (see
    ``segq.bench.argmax_ties``); ``float_logits`` leaves them in float, as segq's exports do."""
    src = _check_model_file(fp32_onnx)
    batches = _calib_list(calib_batches, src)
    input_name = _onnx_input_name(src)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    # temporaries live beside the output so the final os.replace stays on one filesystem
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        # shape inference + ORT basic graph fusions first: markedly faster INT8 on VNNI
        quant_pre_process(str(src), str(pre))
        excluded = _logit_nodes(pre) if float_logits else []
        tmp_out = Path(tmp) / out.name
        with _root_warnings_off():
            quantize_static(
                str(pre), str(tmp_out), _BatchReader(input_name, batches),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                # uint8 activations ran faster than int8 ones on the benchmark CPU
                activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=excluded,
            )
        os.replace(tmp_out, out)
    return out


def nncf_quantize(fp32_onnx: str | Path, out_xml: str | Path,
                  calib_batches: Iterable[np.ndarray]) -> Path:
    """OpenVINO + NNCF post-training INT8 quantization (default preset) of ``fp32_onnx``;
    writes ``out_xml`` and its ``.bin`` and returns the xml path."""
    src = _check_model_file(fp32_onnx)
    batches = _calib_list(calib_batches, src)

    # NNCF's telemetry is opt-out and would phone home outside pytest; NNCF_CI turns it
    # off (it only has effect before nncf's first import)
    os.environ.setdefault("NNCF_CI", "1")
    import nncf  # slow to import, so only when needed
    import openvino as ov

    nncf.set_log_level(logging.WARNING)
    model = ov.Core().read_model(str(src))
    if len(model.inputs) != 1:
        names = ", ".join(i.get_any_name() for i in model.inputs) or "none"
        raise ValueError(f"{src}: expected exactly one model input, found "
                         f"{len(model.inputs)} ({names})")
    quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches))

    out = Path(out_xml)
    out.parent.mkdir(parents=True, exist_ok=True)
    out_bin = out.with_suffix(".bin")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        tmp_xml = Path(tmp) / out.name
        ov.save_model(quantized, str(tmp_xml), compress_to_fp16=False)
        # .bin first: a reader that sees the new .xml then also finds matching weights
        os.replace(tmp_xml.with_suffix(".bin"), out_bin)
        os.replace(tmp_xml, out)
    return out


def model_size_mb(path: str | Path) -> float:
    """On-disk size in MiB of an .onnx file, or of an OpenVINO .xml plus its .bin."""
    path = Path(path)
    files = [path]
    if path.suffix.lower() == ".xml":
        files.append(path.with_suffix(".bin"))
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"model file not found: {f}")
    return files_size_mb(files)
