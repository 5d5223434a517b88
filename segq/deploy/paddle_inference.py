"""Run an exported legacy ``.pdmodel`` with Paddle Inference on CPU (oneDNN FP32 or INT8)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from paddle.inference import Config, create_predictor

from ..cpu_runtime import native_stderr_filtered, verbose_enabled
from .deploy_file import is_weight_only_export, model_files, require_quantized_export

# Ops oneDNN may run in INT8. The default (every quantizable op) fails on QAT models where a
# concat joins a tensor with a conv of itself ("could not create a primitive descriptor for a
# concat primitive"), and ``pool2d`` fails on PP-LiteSeg's adaptive pooling ("There are no
# kernels which are registered in the pool2d operator"); convs are where the time goes.
INT8_OPS = {"conv2d", "fused_conv2d", "depthwise_conv2d"}


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
    """The CPU backend: Paddle Inference (oneDNN) over an exported model directory.

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
            from .weight_only import load_float_model

            config = Config()
            load_float_model(model_dir).configure(config)
        else:
            config = Config(str(model_file), str(params_file))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(cpu_threads))
        config.switch_ir_optim(True)
        if not verbose_enabled():
            config.disable_glog_info()
        if use_mkldnn:
            config.enable_mkldnn()
            # Bound oneDNN's per-shape primitive cache when input sizes vary.
            config.set_mkldnn_cache_capacity(10)
            if int8:
                config.enable_mkldnn_int8(INT8_OPS)
        self.model_dir = Path(model_dir)
        with native_stderr_filtered():  # oneDNN pass reports, unless --verbose
            self._predictor = create_predictor(config)
        self.input_names = list(self._predictor.get_input_names())
        self.output_names = list(self._predictor.get_output_names())

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one ``[N, C, H, W]`` float32 batch and return the first output."""
        return run_predictor(self._predictor, batch)
