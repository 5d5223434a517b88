"""Functional ops that also build under Paddle 3.3.1's legacy (non-PIR) static exporter.

Why this module exists: segq exports models in the legacy ``.pdmodel`` format (the one oneDNN,
PaddleSlim's ``quant_post_static`` and quantized inference accept), tracing them under
``paddle.pir_utils.OldIrGuard()``. In Paddle 3.3.1 about 56 functional APIs lost their legacy
static branch: they call ``_C_ops.<op>`` directly, which accepts only PIR values, so tracing
fails with "argument must be Value, but got Variable" (``F.sigmoid``, ``nn.Sigmoid``,
``paddle.matmul``, ``paddle.bmm``, ``paddle.amax``, ``paddle.argmax``, ...). The old ops
themselves still exist and run under Paddle Inference, so each function here calls the
normal API in dygraph and PIR mode and, when tracing a legacy program, appends the old op
through ``LayerHelper``.

Every such workaround lives here, in one place, so it can be deleted when Paddle fixes the
functional APIs (tests/test_export.py pins which APIs still fail). Functional ops that were
measured to export fine and need no wrapper: ``F.softmax``/``nn.Softmax``, ``paddle.mean``,
``paddle.topk``, ``paddle.max``, ``reshape``, ``transpose``, ``tile``, ``unsqueeze``,
``F.interpolate``, adaptive/max pooling, ``nn.LayerNorm``, and the ``+ - * /`` operators.
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle.base.layer_helper import LayerHelper


def tracing_legacy_program() -> bool:
    """True while building a legacy (non-PIR) static program, e.g. under ``OldIrGuard``."""
    return not (paddle.in_dynamic_mode() or paddle.framework.in_pir_mode())


def _append_op(op_type: str, inputs: dict, attrs: dict | None = None, dtype=None):
    helper = LayerHelper(op_type)
    out = helper.create_variable_for_type_inference(dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": [out]}, attrs=attrs or {})
    return out


def sigmoid(x: paddle.Tensor) -> paddle.Tensor:
    """``F.sigmoid``; under the legacy exporter the old ``sigmoid`` op.

    Both ``F.sigmoid`` and ``nn.Sigmoid`` fail to build there in 3.3.1; models use the layer
    :class:`segq.models.layers.Sigmoid`, which calls this."""
    if not tracing_legacy_program():
        return F.sigmoid(x)
    return _append_op("sigmoid", {"X": [x]}, dtype=x.dtype)


def matmul(x: paddle.Tensor, y: paddle.Tensor, transpose_x: bool = False,
           transpose_y: bool = False) -> paddle.Tensor:
    """``paddle.matmul`` (batched over leading dims, like ``paddle.bmm`` for 3-D inputs);
    under the legacy exporter the old ``matmul_v2`` op with the same semantics.

    Transposing through the flags instead of a separate ``transpose`` saves a copy in both
    dygraph and inference."""
    if not tracing_legacy_program():
        return paddle.matmul(x, y, transpose_x=transpose_x, transpose_y=transpose_y)
    return _append_op("matmul_v2", {"X": [x], "Y": [y]},
                      {"trans_x": bool(transpose_x), "trans_y": bool(transpose_y)}, x.dtype)


# The VarType code of the index dtype the old ``arg_max`` op writes (INT32; INT64 is 3).
_ARG_MAX_INT32 = 2


def argmax(x: paddle.Tensor, axis: int) -> paddle.Tensor:
    """``paddle.argmax(x, axis, dtype="int32")`` (first index of the maximum, axis dropped);
    under the legacy exporter the old ``arg_max`` op.
    (not ``topk(k=1)``, whose channel-strided inference kernel is several times slower:
    docs/design-notes.md)."""
    if not tracing_legacy_program():
        return paddle.argmax(x, axis=axis, dtype="int32")
    return _append_op("arg_max", {"X": [x]},
                      {"axis": axis, "keepdims": False, "flatten": False,
                       "dtype": _ARG_MAX_INT32}, paddle.int32)
