"""The only module that imports PaddleSlim: fake-quant insertion for QAT.

PaddleSlim 2.6's ``QAT`` wraps Paddle's ImperativeQuantAware; a sublayer whose
``skip_quant`` attribute is True is left in float, which is how ``quant.skip_layers`` is
applied.
"""
from __future__ import annotations

from dataclasses import dataclass

import paddle

from ..config import QuantConfig
from .select import select_skipped


@dataclass
class QATModel:
    model: paddle.nn.Layer        # the same layer object, with fake-quant wrappers inside
    quanter: object               # paddleslim.QAT, needed again for the INT8 export
    skipped: list[str]


def prepare_qat(model: paddle.nn.Layer, cfg: QuantConfig) -> QATModel:
    """Insert fake-quant ops into ``model`` in place (load FP32 weights before this)."""
    import paddleslim  # deferred: importing it is slow and only QAT needs it

    skipped = select_skipped(model, cfg.skip_layers)
    by_name = dict(model.named_sublayers())
    for name in skipped:
        by_name[name].skip_quant = True
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
    return QATModel(model=model, quanter=quanter, skipped=skipped)
