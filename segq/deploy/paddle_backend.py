"""Paddle Inference backends: CPU through oneDNN (FP32/INT8), GPU through TensorRT.

The GPU path is split so the CPU build can test it: ``configure_tensorrt`` only calls
methods on a Config, and ``ShapeTunedRunner`` only sequences predictors built from configs
(collect shape ranges once, then run the tuned engine). A weight-only export (INT8 weights,
float inference) is dequantized on load on both (segq.deploy.weight_only).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from paddle.inference import Config, PrecisionType, create_predictor, get_trt_compile_version

from .deploy_file import DeployInfo, is_weight_only
from .options import PredictorOptions
from .paddle_inference import PaddleInferenceModel, run_predictor

TRT_PRECISION = {"fp32": PrecisionType.Float32, "fp16": PrecisionType.Half,
                 "int8": PrecisionType.Int8}
GPU_MEMORY_POOL_MB = 256   # initial pool; Paddle grows it as needed
TRT_WORKSPACE_BYTES = 1 << 30
GPU_ID = 0


def configure_tensorrt(config: Any, options: PredictorOptions, shape_file: str | Path,
                       collect_shapes: bool) -> Any:
    """Set ``config`` (a ``paddle.inference.Config``) up for the GPU and return it.

    ``collect_shapes=True``: plain GPU run that records every tensor's shape range in
    ``shape_file`` (written when the predictor is destroyed). ``False``: TensorRT subgraphs
    at ``options.precision``, dynamic shapes read from ``shape_file``. INT8 takes its scales
    from a quantized export (``use_calib_mode=False``), not from TensorRT calibration.
    """
    config.enable_use_gpu(GPU_MEMORY_POOL_MB, GPU_ID)
    config.disable_glog_info()
    if collect_shapes:
        config.collect_shape_range_info(str(shape_file))
        return config
    config.switch_ir_optim(True)
    config.enable_tensorrt_engine(workspace_size=TRT_WORKSPACE_BYTES,
                                  max_batch_size=options.batch_size,
                                  min_subgraph_size=options.min_subgraph_size,
                                  precision_mode=TRT_PRECISION[options.precision],
                                  use_static=False, use_calib_mode=False)
    # True: shapes outside the collected ranges rebuild the engine instead of failing
    config.enable_tuned_tensorrt_dynamic_shape(str(shape_file), True)
    return config


class ShapeTunedRunner:
    """Run predictors from ``make_config(collect_shapes)``: if ``shape_file`` is missing, the
    first batch runs through a collecting predictor first; every batch then runs through the
    tuned one. The file is kept, so later predictors reuse it."""

    def __init__(self, make_config: Callable[[bool], Any], shape_file: str | Path):
        self.make_config = make_config
        self.shape_file = Path(shape_file)
        self._predictor = None
        if self.shape_file.is_file():
            self._predictor = create_predictor(make_config(False))

    def _collect(self, batch: np.ndarray) -> None:
        self.shape_file.parent.mkdir(parents=True, exist_ok=True)
        collector = create_predictor(self.make_config(True))
        run_predictor(collector, batch)
        del collector  # Paddle writes the shape ranges when the predictor is destroyed
        if not self.shape_file.is_file():
            raise RuntimeError(f"Paddle Inference wrote no shape range file {self.shape_file}")

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self._predictor is None:
            self._collect(batch)
            self._predictor = create_predictor(self.make_config(False))
        return run_predictor(self._predictor, batch)


def require_tensorrt_build() -> None:
    """Fail clearly on a paddlepaddle build that cannot run the GPU path."""
    import paddle

    if not paddle.device.is_compiled_with_cuda():
        raise ValueError(f"device 'gpu' needs paddlepaddle-gpu with CUDA and TensorRT; this "
                         f"paddlepaddle {paddle.__version__} is a CPU build: use device 'cpu'")
    if tuple(get_trt_compile_version()) == (0, 0, 0):
        raise ValueError(f"device 'gpu' runs through TensorRT, but this paddlepaddle "
                         f"{paddle.__version__} was built without it: install a "
                         f"paddlepaddle-gpu build with TensorRT")


def model_config(deploy: DeployInfo) -> Callable[[], Config]:
    """A maker of Configs pointing at the export's model: its files, or for a weight-only
    export the float model :func:`segq.deploy.weight_only.load_float_model` builds in memory
    (dequantized once, shared by every Config made)."""
    if not is_weight_only(deploy.quant):
        return lambda: Config(str(deploy.model_file), str(deploy.params_file))
    from .weight_only import load_float_model

    model = load_float_model(deploy.model_dir)

    def make() -> Config:
        config = Config()
        model.configure(config)
        return config
    return make


class PaddleTensorRTModel:
    """GPU backend: Paddle Inference with TensorRT subgraphs and tuned dynamic shapes."""

    def __init__(self, deploy: DeployInfo, options: PredictorOptions):
        require_tensorrt_build()
        self._tmp = None
        shape_file = options.trt_shape_file
        if shape_file is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="segq-trt-")
            shape_file = Path(self._tmp.name) / "shape_range_info.pbtxt"

        make_model_config = model_config(deploy)

        def make_config(collect_shapes: bool) -> Config:
            return configure_tensorrt(make_model_config(), options, shape_file,
                                      collect_shapes)

        self._runner = ShapeTunedRunner(make_config, shape_file)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._runner.run(batch)


def paddle_backend(deploy: DeployInfo, options: PredictorOptions
                   ) -> PaddleTensorRTModel | PaddleInferenceModel:
    """The Paddle Inference backend ``options`` ask for."""
    if options.device == "gpu":
        return PaddleTensorRTModel(deploy, options)
    return PaddleInferenceModel(deploy.model_dir, use_mkldnn=True,
                                cpu_threads=options.cpu_threads,
                                int8=options.precision == "int8")
