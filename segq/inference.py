"""Run an exported legacy ``.pdmodel`` with Paddle Inference on CPU (oneDNN FP32 or INT8)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml
from paddle.inference import Config, create_predictor

from segq.export import DEPLOY_FILE, MODEL_FILE, PARAMS_FILE

# Ops oneDNN may run in INT8. The default (every quantizable op) fails on QAT models where a
# concat joins a tensor with a conv of itself ("could not create a primitive descriptor for a
# concat primitive"), and ``pool2d`` fails on PP-LiteSeg's adaptive pooling ("There are no
# kernels which are registered in the pool2d operator"); convs are where the time goes.
INT8_OPS = {"conv2d", "fused_conv2d", "depthwise_conv2d"}
# deploy.yaml's Quant.method of a weight-only export (slim/ptq.py --weight_only)
WEIGHT_ONLY = "weight_only"


def yaml_error_line(e: yaml.YAMLError) -> str:
    """PyYAML's multi-line message (with a caret drawing) as one line: problem and place."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or " ".join(str(e).split())
    return f"{problem}{where}"


def _deploy_content(model_dir: Path) -> dict | None:
    """The parsed deploy.yaml of an export, ``None`` if the directory has none."""
    deploy = model_dir / DEPLOY_FILE
    if not deploy.is_file():
        return None
    try:
        content = yaml.safe_load(deploy.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{deploy}: not valid YAML: {yaml_error_line(e)}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{deploy}: expected a mapping with a 'Deploy:' section, "
                         f"got {type(content).__name__}")
    return content


def model_files(model_dir: str | os.PathLike) -> tuple[Path, Path]:
    """The model and params files of an export, named by its deploy.yaml when present."""
    model_dir = Path(model_dir)
    info = (_deploy_content(model_dir) or {}).get("Deploy")
    info = info if isinstance(info, dict) else {}  # segq.deploy's reader reports bad ones
    paths = (model_dir / info.get("model", MODEL_FILE),
             model_dir / info.get("params", PARAMS_FILE))
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"inference model file not found: {path} "
                                    f"(export a model to {model_dir} first)")
    return paths


def is_weight_only(quant) -> bool:
    """Whether a deploy.yaml ``Quant:`` section describes a weight-only export
    (``slim/ptq.py --weight_only``): INT8 weights in the params file, float inference."""
    return isinstance(quant, dict) and quant.get("method") == WEIGHT_ONLY


def is_weight_only_export(model_dir: str | os.PathLike) -> bool:
    return is_weight_only((_deploy_content(Path(model_dir)) or {}).get("Quant"))


def require_quantized_export(model_dir: str | os.PathLike, asked: str = "int8=True",
                             fp32_instead: str = "int8=False") -> None:
    """Refuse an INT8 run of a float export. oneDNN finds no quantized ops in it and runs it
    in FP32, so whatever is reported as INT8 would be FP32 numbers. An export is quantized
    when its deploy.yaml has the ``Quant:`` section slim/qat_export.py and slim/ptq.py write,
    except a weight-only one (``Quant.method: weight_only``): its INT8 weights are
    dequantized on load and it runs in float. A directory without deploy.yaml (not a segq
    export) cannot tell and is let through."""
    content = _deploy_content(Path(model_dir))
    if content is None:
        return
    if content.get("Quant") is None:
        raise ValueError(f"{asked} needs a quantized export, but {model_dir} is FP32 (its "
                         f"{DEPLOY_FILE} has no 'Quant:' section): use {fp32_instead}, or "
                         f"make an INT8 export with slim/qat_export.py (quantization-aware "
                         f"training) or slim/ptq.py (post-training quantization)")
    if is_weight_only(content["Quant"]):
        raise ValueError(f"{asked} on {model_dir}: a weight-only export runs in float: use "
                         f"{fp32_instead}")


def run_predictor(predictor, batch: np.ndarray) -> np.ndarray:
    """Feed ``batch`` to a Paddle predictor's first input and return its first output."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if batch.ndim != 4:
        raise ValueError(f"batch must be [N, C, H, W], got shape {batch.shape}")
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(batch.shape))
    handle.copy_from_cpu(batch)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


class PaddleInferenceModel:
    """A CPU predictor over an exported model directory.

    Args:
        model_dir: directory holding ``model.pdmodel``/``model.pdiparams`` (or the files its
            ``deploy.yaml`` names).
        use_mkldnn: run with oneDNN kernels (about 4x faster than plain CPU kernels).
        cpu_threads: math library threads.
        int8: run quantized ops in INT8 through oneDNN (needs ``use_mkldnn`` and a quantized
            export: an FP32 or weight-only one is refused, see
            :func:`require_quantized_export`).

    A weight-only export (``Quant.method: weight_only``) is loaded through
    :func:`segq.deploy.weight_only.load_float_model`: Paddle Inference cannot run its INT8
    weights in float ops, so they are dequantized in memory and the model runs in FP32.
    """

    def __init__(self, model_dir: str | os.PathLike, use_mkldnn: bool = True,
                 cpu_threads: int = 2, int8: bool = False):
        if int8:
            require_quantized_export(model_dir)
            if not use_mkldnn:
                raise ValueError("int8=True runs through oneDNN: set use_mkldnn=True")
        model_file, params_file = model_files(model_dir)
        self.weight_only = is_weight_only_export(model_dir)
        if self.weight_only:
            from .deploy.weight_only import load_float_model  # segq.deploy imports this module

            config = Config()
            load_float_model(model_dir).configure(config)
        else:
            config = Config(str(model_file), str(params_file))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(cpu_threads))
        config.switch_ir_optim(True)
        config.disable_glog_info()
        if use_mkldnn:
            config.enable_mkldnn()
            # Bound oneDNN's per-shape primitive cache when input sizes vary.
            config.set_mkldnn_cache_capacity(10)
            if int8:
                config.enable_mkldnn_int8(INT8_OPS)
        self.model_dir = Path(model_dir)
        self._predictor = create_predictor(config)
        self.input_names = list(self._predictor.get_input_names())
        self.output_names = list(self._predictor.get_output_names())

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one ``[N, C, H, W]`` float32 batch and return the first output."""
        return run_predictor(self._predictor, batch)
