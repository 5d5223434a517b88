"""The only module that imports PaddleSlim: fake-quant insertion for QAT.

PaddleSlim 2.6's ``QAT`` wraps Paddle's ImperativeQuantAware; a sublayer whose
``skip_quant`` attribute is True is left in float, which is how ``quant.skip_layers`` is
applied.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import paddle

from ..config import QuantConfig
from .select import select_skipped


@dataclass
class QATModel:
    model: paddle.nn.Layer        # the same layer object, with fake-quant wrappers inside
    quanter: object               # paddleslim.QAT, needed again for the INT8 export
    skipped: list[str]
    config: QuantConfig
    # with PACT: a float copy taken before fake-quant insertion, to build the export twin
    float_model: paddle.nn.Layer | None = None


def prepare_qat(model: paddle.nn.Layer, cfg: QuantConfig) -> QATModel:
    """Insert fake-quant ops into ``model`` in place (load FP32 weights before this)."""
    import paddleslim  # deferred: importing it is slow and only QAT needs it

    skipped = select_skipped(model, cfg.skip_layers)
    by_name = dict(model.named_sublayers())
    for name in skipped:
        by_name[name].skip_quant = True
    float_model = copy.deepcopy(model) if cfg.activation_preprocess else None
    quanter = paddleslim.QAT(config={
        "weight_quantize_type": cfg.weight_quantize_type,
        "activation_quantize_type": cfg.activation_quantize_type,
        "weight_bits": cfg.weight_bits,
        "activation_bits": cfg.activation_bits,
        "moving_rate": cfg.moving_rate,
        "quantizable_layer_type": list(cfg.quantizable_layer_type),
        "weight_preprocess_type": None,
        "activation_preprocess_type": cfg.activation_preprocess,
        "dtype": "int8",
        "window_size": 10000,
        "fuse_conv_bn": False,
        "onnx_format": cfg.onnx_format,
    })
    model = quanter.quantize(model, inplace=True)
    return QATModel(model=model, quanter=quanter, skipped=skipped, config=cfg,
                    float_model=float_model)


def export_twin(qat: QATModel) -> QATModel:
    """The QAT model as it is exported: ``qat`` itself, or with PACT a twin without the
    clipping layers that holds the same trained weights and quantization scales.

    PACT's learned clip only shapes training; the export quantizes with the scales it led to.
    PaddleSlim's own PACT export (``QAT._remove_preprocess``) re-quantizes the bare model,
    which would drop any wrapper around it (segq's argmax output) and leaves static mode on,
    so segq builds the twin itself.
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
    try:
        qat.quanter.save_quantized_model(layer, str(path_prefix), input_spec=spec)
    finally:
        # PaddleSlim 2.6 leaves static mode switched on after exporting a PACT model
        # (QAT._remove_preprocess ends with paddle.enable_static()).
        if not paddle.in_dynamic_mode():
            paddle.disable_static()
