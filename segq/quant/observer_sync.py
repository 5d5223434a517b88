"""Moving-average activation observers that agree across data-parallel ranks.

Paddle's ``FakeQuantMovingAverageAbsMax`` (the input quantizer of each quantized conv) and
``MovingAverageAbsMaxScale`` (the output-scale observer) update in train mode from the batch
they see: ``state = r * state + 1``, ``accum = r * accum + max|x|``, ``scale = accum / state``.
Under ``paddle.DataParallel`` each rank sees its own share of the global batch, so the ranks'
scales drift apart and each would export a different INT8 model (``DataParallel`` only
averages gradients; these are non-trainable parameters). Paddle's own ``reduce_type='max'``
all-reduces the *previous* scale before the kernel recomputes it from the local batch, and
``QuantizedConv2D`` does not set it anyway.

Here, in train mode with more than one rank, ``max|x|`` is all-reduced (MAX) before the
update: the max over the ranks' shares is the max over the global batch, so every rank
holds, and quantizes with, exactly the scale one process would compute from the whole batch
(``tests/test_data_parallel.py`` pins 2 ranks x B against 1 rank x 2B). Eval mode, and a
single process, run Paddle's own forward untouched.
"""
from __future__ import annotations

import types

import paddle
from paddle import _C_ops
from paddle.nn.quant.quant_layers import FakeQuantMovingAverageAbsMax, MovingAverageAbsMaxScale

from ..engine.distributed import current_shard

OBSERVER_TYPES = (FakeQuantMovingAverageAbsMax, MovingAverageAbsMaxScale)


def sync_observers_across_ranks(model: paddle.nn.Layer) -> int:
    """Make every moving-average observer in ``model`` update from the global batch when
    training data-parallel; returns how many observers were patched."""
    count = 0
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, OBSERVER_TYPES) and not getattr(layer, "_segq_synced", False):
            layer._segq_native_forward = layer.forward
            layer.forward = types.MethodType(_synced_forward, layer)
            layer._segq_synced = True
            count += 1
    return count


def _synced_forward(layer, x: paddle.Tensor) -> paddle.Tensor:
    if not layer.training or current_shard()[1] == 1:
        return layer._segq_native_forward(x)
    with paddle.no_grad():
        batch_max = paddle.max(paddle.abs(x)).reshape([1])
        paddle.distributed.all_reduce(batch_max, op=paddle.distributed.ReduceOp.MAX)
        rate = layer._moving_rate
        # the same float32 arithmetic, in the same order, as Paddle's kernel
        state = rate * layer._state + 1.0
        accum = rate * layer._accum + batch_max
        layer._state.set_value(state)
        layer._accum.set_value(accum)
        layer._scale.set_value(accum / state)
    if isinstance(layer, MovingAverageAbsMaxScale):
        return x  # an observer: the output is its input
    # quantize-dequantize with the scale just set: the kernel's test mode reads it as given;
    # its gradient is the same straight-through estimator as in train mode
    out, _, _, _ = _C_ops.fake_quantize_dequantize_moving_average_abs_max(
        x, layer._scale, None, None, layer._moving_rate, layer._quant_bits, True, 1)
    return out
