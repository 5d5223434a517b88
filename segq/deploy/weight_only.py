"""Load a weight-only export (``slim/ptq.py --weight_only``) as a float model.

PaddleSlim's ``quant_post_dynamic`` (Paddle's ``WeightQuantization``) stores the weights of
conv2d / depthwise_conv2d / mul ops as INT8 (or INT16) in ``model.pdiparams`` and the scales
as attributes of the op that reads them:

- ``quantization_type``: ``post_weight_abs_max`` (one scale) or
  ``post_weight_channel_wise_abs_max`` (one scale per output channel: axis 0 of a conv
  filter, the last axis (columns) of a mul weight);
- ``<weight name>_quant_scale``: the scales (a list, also for one scale);
- ``quantize_weight_bits``, ``with_quant_attr``.

The float weight is ``int * scale`` (Paddle's own ``_conv_channel_wise_dequantization`` /
``_mul_channel_wise_dequantization``). Paddle Inference 3.3.1 does not do this itself: a
conv fails with "input and filter data type should be consistent ... filter type is int8_t",
with and without oneDNN. :func:`load_float_model` dequantizes every such weight on load,
drops the quantization attributes, and returns the float program and params as bytes for
``paddle.inference.Config.set_model_buffer``; nothing is written to disk.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .deploy_file import model_files

POST_WEIGHT_TYPES = ("post_weight_abs_max", "post_weight_channel_wise_abs_max")
SCALE_SUFFIX = "_quant_scale"
QUANT_ATTRS = ("quantization_type", "quantize_weight_bits", "with_quant_attr")
# axis of the channel-wise scales, by op type (Paddle's WeightQuantization)
CHANNEL_AXIS = {"conv2d": 0, "depthwise_conv2d": 0, "mul": -1}


@dataclass(frozen=True)
class FloatModel:
    """A legacy inference model in memory, as ``Config.set_model_buffer`` takes it."""

    program: bytes
    params: bytes
    dequantized: tuple[str, ...]   # the weights turned back into float32

    def configure(self, config) -> None:
        """Point a ``paddle.inference.Config`` at this model."""
        config.set_model_buffer(self.program, len(self.program),
                                self.params, len(self.params))


def dequantize(weight: np.ndarray, scales, op_type: str, quantization_type: str,
               name: str = "weight") -> np.ndarray:
    """The float32 weight of an integer ``weight`` stored by Paddle's WeightQuantization.

    Computed as Paddle does: integer times the scale as a Python float, then float32 (an
    all-zero channel has scale 0, whatever integers its 0/0 left)."""
    scales = np.asarray(scales, dtype=np.float64)
    if quantization_type == "post_weight_abs_max":
        if scales.size != 1:
            raise ValueError(f"{name}: post_weight_abs_max takes one scale, got {scales.size}")
        shaped = scales.reshape([1] * weight.ndim)
    elif quantization_type == "post_weight_channel_wise_abs_max":
        if op_type not in CHANNEL_AXIS:
            raise ValueError(f"{name}: channel-wise weight quantization of a {op_type!r} op "
                             f"is not Paddle's (it takes {', '.join(CHANNEL_AXIS)})")
        axis = CHANNEL_AXIS[op_type] % weight.ndim
        if scales.size != weight.shape[axis]:
            raise ValueError(f"{name}: {scales.size} channel-wise scales for a {op_type} "
                             f"weight of shape {list(weight.shape)} (axis {axis} has "
                             f"{weight.shape[axis]} channels)")
        shape = [1] * weight.ndim
        shape[axis] = scales.size
        shaped = scales.reshape(shape)
    else:
        raise ValueError(f"{name}: unknown weight quantization type {quantization_type!r} "
                         f"(expected one of {', '.join(POST_WEIGHT_TYPES)})")
    return (weight.astype(np.float64) * shaped).astype(np.float32)


def _dequantize_program(program, scope, place) -> list[str]:
    """Dequantize, in ``scope``, every weight an op marks as weight-only quantized; fix its
    dtype in the program and drop the quantization attributes. Returns the weight names.

    A weight read by several quantized ops was quantized once per op by Paddle, the later
    times from its already integer values (scales of 1, no change): the first op's scales
    (program order) are the ones that give the float weight."""
    from paddle.base import core

    done: list[str] = []
    for block in program.blocks:
        for op in block.ops:
            if not op.has_attr("quantization_type"):
                continue
            qtype = op.attr("quantization_type")
            if qtype not in POST_WEIGHT_TYPES:
                continue  # e.g. a quantize/dequantize model's attributes: not ours
            names = [n for n in op.input_arg_names if op.has_attr(n + SCALE_SUFFIX)]
            if not names:
                raise ValueError(f"op {op.type} has quantization_type {qtype!r} but no "
                                 f"'<weight>{SCALE_SUFFIX}' attribute: not a model Paddle's "
                                 f"WeightQuantization wrote")
            for name in names:
                scales = op.attr(name + SCALE_SUFFIX)
                if name not in done:
                    var = scope.find_var(name)
                    if var is None:
                        raise ValueError(f"weight {name} of op {op.type} is not in the "
                                         f"params file")
                    tensor = var.get_tensor()
                    stored = np.array(tensor)
                    if np.issubdtype(stored.dtype, np.integer):
                        tensor.set(dequantize(stored, scales, op.type, qtype, name), place)
                    block._var_recursive(name).desc.set_dtype(core.VarDesc.VarType.FP32)
                    done.append(name)
                op._remove_attr(name + SCALE_SUFFIX)
            for attr in QUANT_ATTRS:
                if op.has_attr(attr):
                    op._remove_attr(attr)
    return done


def _load(executor, model_file: Path, params_file: Path):
    """``paddle.static.load_inference_model`` of the two files: by their path prefix when
    they are ``<prefix>.pdmodel``/``<prefix>.pdiparams``, else from their bytes."""
    import paddle

    if model_file.suffix == ".pdmodel" and params_file == model_file.with_suffix(".pdiparams"):
        return paddle.static.load_inference_model(str(model_file.with_suffix("")), executor)
    return paddle.static.load_inference_model(None, executor,
                                              model_filename=model_file.read_bytes(),
                                              params_filename=params_file.read_bytes())


def load_float_model(model_dir: str | os.PathLike) -> FloatModel:
    """The export in ``model_dir`` (files named by its deploy.yaml) as a float32 model in
    memory: weight-only quantized weights dequantized, everything else as stored.

    Runs Paddle's legacy static graph in a scope of its own; the dynamic mode is restored on
    the way out."""
    import paddle

    from .export import legacy_static

    model_file, params_file = model_files(model_dir)
    with legacy_static():
        place = paddle.CPUPlace()
        executor = paddle.static.Executor(place)
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, feed_names, fetch_vars = _load(executor, model_file, params_file)
            done = _dequantize_program(program, scope, place)
            feed_vars = [program.global_block().var(n) for n in feed_names]
            prog = paddle.static.serialize_program(feed_vars, fetch_vars, program=program)
            params = paddle.static.serialize_persistables(feed_vars, fetch_vars, executor,
                                                          program=program)
    return FloatModel(prog, params, tuple(done))
