"""Exports of a config's network with random weights, for speed measurements: latency does
not depend on weight values, so the FP32 / INT8 speed of every zoo network can be measured
(and profiled) without training it. The mIoU of such models means nothing.

Weights are random with BatchNorm statistics from a few random batches; the INT8 export is
fake quant (the config's ``quant`` section, or the defaults) whose activation scales have
seen a few more random batches."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import paddle

from ..config import SegConfig
from ..deploy.export import ExportOptions

CALIBRATION_SHAPE = [2, 3, 240, 240]
EXPORT_NAMES = ("fp32", "int8", "int8_fast")


def settle_batchnorm(model: paddle.nn.Layer, batches: int = 2) -> None:
    """Non-trivial BatchNorm statistics for a random-weight model (train-mode forwards); the
    model ends in eval mode."""
    model.train()
    with paddle.no_grad():
        for _ in range(batches):
            model(paddle.randn(CALIBRATION_SHAPE))
    model.eval()


def random_weight_exports(cfg: SegConfig, save_dir: str | os.PathLike,
                          input_shape: list[int], seed: int = 0,
                          fast_argmax: bool | float = True) -> dict[str, Path]:
    """Write ``save_dir/fp32`` (FP32), ``save_dir/int8`` (QAT INT8) and ``save_dir/int8_fast``
    (INT8 with ``argmax_before_resize``) exports of the config's network with random weights
    at ``input_shape``; returns {name: export dir}."""
    from ..builders import build_model_for, quant_config_of
    from ..deploy.workflows import export_model
    from ..quant.paddleslim_adapter import prepare_qat
    from ..quant.qat import export_qat_model, observe_activation_ranges

    paddle.seed(seed)
    save_dir = Path(save_dir)
    model = build_model_for(cfg)
    settle_batchnorm(model)
    dirs = {"fp32": export_model(cfg, model, str(save_dir / "fp32"),
                                 ExportOptions(input_shape=input_shape))}
    qat = prepare_qat(model, quant_config_of(cfg))  # in place: the FP32 export comes first
    observe_activation_ranges(qat, [paddle.randn(CALIBRATION_SHAPE) for _ in range(2)])
    dirs["int8"] = export_qat_model(cfg, qat, str(save_dir / "int8"),
                                    ExportOptions(input_shape=input_shape))
    dirs["int8_fast"] = export_qat_model(cfg, qat, str(save_dir / "int8_fast"),
                                         ExportOptions(input_shape=input_shape,
                                                       argmax_before_resize=fast_argmax))
    return dirs


def onnx_and_nncf_peer(dirs: dict[str, Path], save_dir: str | os.PathLike,
                       input_shape: list[int], calib_batches: int = 8) -> dict[str, Path]:
    """ONNX files of the FP32 and INT8 exports in ``dirs`` (INT8 in ONNX Runtime's layout)
    and the peers' post-training INT8 models of the FP32 one, calibrated on random batches:
    NNCF's (``save_dir/nncf/model.xml``) and ONNX Runtime's ``quantize_static``
    (``save_dir/ort_ptq/model.onnx``); returns {name: model file}."""
    from ..deploy.onnx_export import export_onnx
    from .peer_ptq import nncf_quantize, ort_quantize_static

    rng = np.random.default_rng(0)
    shape = [1 if d == -1 else d for d in input_shape]  # a dynamic batch calibrates with 1
    batches = [rng.standard_normal(shape).astype("float32") for _ in range(calib_batches)]
    files = {"fp32": export_onnx(dirs["fp32"]),
             "int8": export_onnx(dirs["int8"], calib_batches=batches[:4])}
    files["nncf"] = nncf_quantize(files["fp32"], Path(save_dir) / "nncf" / "model.xml", batches)
    files["ort_ptq"] = ort_quantize_static(files["fp32"],
                                           Path(save_dir) / "ort_ptq" / "model.onnx", batches)
    return files
