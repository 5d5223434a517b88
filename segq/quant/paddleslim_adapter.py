"""The only module that imports PaddleSlim: fake-quant insertion for QAT and the INT8 export.

Fake quant comes from Paddle's ImperativeQuantAware (what PaddleSlim 2.6's ``QAT`` wraps) with
PaddleSlim's PACT; a sublayer whose ``skip_quant`` attribute is True is left in float, which
is how ``quant.skip_layers`` is applied.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import paddle

from ..config import QuantConfig
from .fold_bn import fold_conv_bn
from .select import select_skipped


@dataclass
class QATModel:
    model: paddle.nn.Layer        # the same layer object, with fake-quant wrappers inside
    quanter: object               # Paddle's ImperativeQuantAware, needed again for the export
    skipped: list[str]
    config: QuantConfig
    # with PACT: a float copy taken before fake-quant insertion, to build the export twin
    float_model: paddle.nn.Layer | None = None


def prepare_qat(model: paddle.nn.Layer, cfg: QuantConfig) -> QATModel:
    """Insert fake-quant ops into ``model`` in place (load FP32 weights before this; with
    ``fuse_conv_bn`` their BatchNorm statistics are folded into the convs first)."""
    if cfg.fuse_conv_bn:
        sample = paddle.zeros([1, getattr(model, "in_channels", 3), 128, 128]) + 0.5
        fold_conv_bn(model, sample)
    skipped = select_skipped(model, cfg.skip_layers)
    by_name = dict(model.named_sublayers())
    for name in skipped:
        by_name[name].skip_quant = True
    float_model = copy.deepcopy(model) if cfg.activation_preprocess else None
    # Paddle's ImperativeQuantAware is what paddleslim.QAT wraps; built directly, its checks
    # are the ones that matter (PaddleSlim 2.6's lists differ from what Paddle runs) and its
    # export has no PACT side effects (see export_twin). PaddleSlim supplies PACT.
    quanter = paddle.quantization.ImperativeQuantAware(
        quantizable_layer_type=list(cfg.quantizable_layer_type),
        weight_quantize_type=cfg.weight_quantize_type,
        activation_quantize_type=cfg.activation_quantize_type,
        weight_bits=cfg.weight_bits,
        activation_bits=cfg.activation_bits,
        moving_rate=cfg.moving_rate,
        fuse_conv_bn=False,
        act_preprocess_layer=_pact_layer() if cfg.activation_preprocess == "PACT" else None,
        onnx_format=cfg.onnx_format,
    )
    quanter.quantize(model)
    if paddle.distributed.get_world_size() > 1:  # launched data-parallel: one scale per batch
        from .observer_sync import sync_observers_across_ranks

        sync_observers_across_ranks(model)
    return QATModel(model=model, quanter=quanter, skipped=skipped, config=cfg,
                    float_model=float_model)


def _pact_layer() -> type[paddle.nn.Layer]:
    from paddleslim.dygraph.quant.qat import PACT  # deferred: importing PaddleSlim is slow

    return PACT


def export_twin(qat: QATModel) -> QATModel:
    """The QAT model as it is exported: ``qat`` itself, or with PACT a twin without the
    clipping layers that holds the same trained weights and quantization scales.

    PACT's learned clip only shapes training; the export quantizes with the scales it led to
    (as PaddleSlim's ``QAT._remove_preprocess`` does, which would also drop any wrapper
    around the model, segq's argmax output included, and leave static mode on).
    """
    if qat.float_model is None:
        return qat
    twin = prepare_qat(copy.deepcopy(qat.float_model),
                       qat.config.model_copy(update={"activation_preprocess": None}))
    state = qat.model.state_dict()
    missing = sorted(set(twin.model.state_dict()) - set(state))
    if missing:
        raise RuntimeError(f"the PACT-free export twin has weights the QAT model lacks: "
                           f"{missing[:5]}")
    twin.model.set_state_dict({k: state[k] for k in twin.model.state_dict()})
    twin.model.eval()
    return twin


def save_quantized(qat: QATModel, layer: paddle.nn.Layer, path_prefix: Path,
                   input_shape: list[int]) -> None:
    """Write ``layer`` (the eval-mode QAT model, possibly wrapped) as a legacy INT8 inference
    model ``{path_prefix}.pdmodel``/``.pdiparams`` (an ``export.Saver``).

    With ``onnx_format`` the fake-quant ops become quantize_linear/dequantize_linear pairs and
    weights are stored as INT8; Paddle's saver already runs under ``OldIrGuard``.
    """
    spec = [paddle.static.InputSpec(shape=[None if d == -1 else d for d in input_shape],
                                    dtype="float32", name="x")]
    with _quiet_paddle():
        qat.quanter.save_quantized_model(layer, str(path_prefix), input_spec=spec)


# ---------------------------------------------------------------- post-training quantization
PTQ_ALGOS = ("abs_max", "avg", "hist", "mse", "KL")
RECON_LEVELS = {"layer": "layer-wise", "region": "region-wise"}
# the static-graph op types behind each quantizable dygraph layer type
_OP_TYPES = {"Conv2D": ("conv2d", "depthwise_conv2d"), "Linear": ("mul", "matmul", "matmul_v2")}


def static_op_types(layer_types) -> list[str]:
    return [op for layer in layer_types for op in _OP_TYPES[layer]]


def weight_only_op_types(layer_types) -> list[str]:
    """Paddle's weight-only quantizer (WeightQuantization) takes conv2d, depthwise_conv2d and
    mul, and asserts on matmul / matmul_v2: a Linear's matmul_v2 stays in float there."""
    return [op for op in static_op_types(layer_types)
            if op in ("conv2d", "depthwise_conv2d", "mul")]


def quantize_post_training(fp32_dir: Path, out_dir: Path, batches, batch_nums: int,
                           cfg: QuantConfig, algo: str, hist_percent: float = 0.9999,
                           bias_correction: bool = False, recon: str | None = None,
                           skip_tensors: list[str] | None = None) -> None:
    """Calibrate the legacy FP32 inference model in ``fp32_dir`` on ``batches()`` (a callable
    yielding float32 NCHW arrays) and write the INT8 model (quantize/dequantize format, INT8
    weights) to ``out_dir/model.pdmodel``/``.pdiparams``.

    ``quant_post_static`` (or, with ``recon``, ``quant_recon_static``: AdaRound/BRECQ-style
    weight rounding learned per layer or per region) on the legacy program; weights named in
    ``skip_tensors`` keep their op in float."""
    from paddleslim.quant import quant_post_static, quant_recon_static

    def data_loader():
        for batch in batches():
            yield {"x": batch}

    common = dict(
        model_dir=str(fp32_dir), quantize_model_path=str(out_dir),
        data_loader=data_loader, model_filename="model.pdmodel",
        params_filename="model.pdiparams", save_model_filename="model.pdmodel",
        save_params_filename="model.pdiparams", batch_nums=batch_nums, algo=algo,
        hist_percent=hist_percent, bias_correction=bias_correction,
        quantizable_op_type=static_op_types(cfg.quantizable_layer_type),
        weight_bits=cfg.weight_bits, activation_bits=cfg.activation_bits,
        weight_quantize_type=cfg.weight_quantize_type, onnx_format=True,
        skip_tensor_list=list(skip_tensors or []) or None)
    with _static_mode() as executor, _fast_kl_threshold(), _quiet_paddle():
        if recon is None:
            quant_post_static(executor=executor, **common)
        else:
            quant_recon_static(executor=executor, recon_level=RECON_LEVELS[recon],
                               cache_dir=str(Path(out_dir).parent / "recon_cache"), **common)


def quantize_weights_only(fp32_dir: Path, out_dir: Path, cfg: QuantConfig,
                          weight_bits: int = 8) -> None:
    """Store the weights of the quantizable ops as ``weight_bits`` integers (about 4x smaller
    at 8 bits); inference dequantizes them on load and runs in float."""
    from paddleslim.quant import quant_post_dynamic

    with _static_mode(), _quiet_paddle():
        quant_post_dynamic(model_dir=str(fp32_dir), save_model_dir=str(out_dir),
                           model_filename="model.pdmodel", params_filename="model.pdiparams",
                           save_model_filename="model.pdmodel",
                           save_params_filename="model.pdiparams",
                           quantizable_op_type=weight_only_op_types(cfg.quantizable_layer_type),
                           weight_bits=weight_bits)
    # PaddleSlim writes into a quantized_model/ sub-folder of save_model_dir
    for f in (Path(out_dir) / "quantized_model").iterdir():
        f.replace(Path(out_dir) / f.name)
    (Path(out_dir) / "quantized_model").rmdir()


class _fast_kl_threshold:
    """Paddle's post-training quantizer with segq's vectorized KL threshold search: the same
    thresholds (tests/test_kl_threshold.py), about 200x faster per activation tensor; Paddle's
    list-based search made KL calibration of a segmentation network take minutes."""

    def __enter__(self):
        from paddle.static.quantization import post_training_quantization as module

        from .kl_threshold import cal_kl_threshold

        self._module, self._original = module, module.cal_kl_threshold
        module.cal_kl_threshold = cal_kl_threshold

    def __exit__(self, *exc):
        self._module.cal_kl_threshold = self._original
        return False


@contextlib.contextmanager
def _static_mode():
    """Paddle's static graph under the legacy IR, for PaddleSlim's post-training tools (they
    read and write ``.pdmodel`` programs), with a CPU executor; dygraph comes back after."""
    from ..deploy.export import legacy_static

    with legacy_static():
        yield paddle.static.Executor(paddle.CPUPlace())


# the loggers of Paddle's quantization code and of PaddleSlim (INFO: "Load model and set data
# loader ...", "Collect quantized variable names ...", "The quantized model is saved in ...")
QUANT_LOGGERS = ("paddle.static.quantization.", "paddle.quantization.", "paddle.nn.quant.",
                 "paddleslim.")
# the modules whose ``tqdm`` draws Paddle's progress bars ("Preparation stage, Run batch:",
# "Sampling stage, Run batch:", "Adding quant op with weight:"); PaddleSlim's reconstruction
# draws them with paddle.static.quantization.utils.tqdm
_BAR_MODULES = ("paddle.static.quantization.post_training_quantization",
                "paddle.static.quantization.quantization_pass",
                "paddle.static.quantization.utils")
# paddle.static.io warns at every legacy load, which Paddle's and PaddleSlim's own savers do
_LEGACY_LOAD_WARNING = "The old way to load inference model is deprecated"


class _NoBar:
    """A silent stand-in for ``tqdm`` as Paddle's quantization code uses it."""

    def __init__(self, *args, **kwargs):
        self.n = 0

    def update(self, n=1):
        self.n += n

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _DropLegacyLoadWarning(logging.Filter):
    def filter(self, record):
        return not record.getMessage().startswith(_LEGACY_LOAD_WARNING)


class _quiet_paddle:
    """Unless verbose (``--verbose``): Paddle's quantization loggers and PaddleSlim's at
    WARNING, their progress bars off and the legacy-load deprecation warning dropped, for
    the block; the loggers' levels stay raised, the bars come back after it."""

    def __enter__(self):
        from ..cpu_runtime import quiet_library_loggers, verbose_enabled

        self._swapped = []
        if verbose_enabled():
            return
        import importlib

        for name in _BAR_MODULES:
            module = importlib.import_module(name)
            if hasattr(module, "tqdm"):
                self._swapped.append((module, module.tqdm))
                module.tqdm = _NoBar
        quiet_library_loggers(QUANT_LOGGERS)
        io_logger = logging.getLogger("paddle.static.io")
        if not any(isinstance(f, _DropLegacyLoadWarning) for f in io_logger.filters):
            io_logger.addFilter(_DropLegacyLoadWarning())

    def __exit__(self, *exc):
        for module, bar in self._swapped:
            module.tqdm = bar
        return False
