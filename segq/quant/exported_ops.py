"""What an exported (legacy ``.pdmodel``) program quantizes: for each conv / matmul weight,
whether the op reads its weight and its input through quantize/dequantize ops."""
from __future__ import annotations

import os
from dataclasses import dataclass

import paddle

from ..deploy.deploy_file import model_path_prefix
from ..deploy.export import legacy_static

WEIGHT_SLOTS = {"conv2d": ("Filter", "Input"), "depthwise_conv2d": ("Filter", "Input"),
                "conv2d_transpose": ("Filter", "Input"), "matmul_v2": ("Y", "X"),
                "matmul": ("Y", "X")}
DEQUANT_OPS = {"dequantize_linear", "fake_dequantize_max_abs",
               "fake_channel_wise_dequantize_max_abs", "fake_quantize_dequantize_abs_max",
               "fake_channel_wise_quantize_dequantize_abs_max",
               "fake_quantize_dequantize_moving_average_abs_max"}


@dataclass(frozen=True)
class WeightOp:
    """``input_quantized`` can be True for a layer kept in float: Paddle's ONNX-format export
    also quantize-dequantizes the *output* of every quantized layer (its output scale, which
    oneDNN INT8 reads and removes and TensorRT uses for INT8 elementwise ops), so a float
    layer fed by a quantized one reads such a pair although it has no quantizer itself."""
    op_type: str
    weight: str               # the parameter's name (as the dygraph model named it)
    weight_quantized: bool
    input_quantized: bool


def weight_ops(model_dir: str | os.PathLike) -> list[WeightOp]:
    """Every conv / matmul op of the exported model that reads a parameter, in program
    order."""
    prefix = model_path_prefix(model_dir)
    with legacy_static():
        program, _, _ = paddle.static.load_inference_model(
            prefix, paddle.static.Executor(paddle.CPUPlace()))
        block = program.global_block()
        producer = {name: op for op in block.ops for name in op.output_arg_names}
        found = []
        for op in block.ops:
            if op.type not in WEIGHT_SLOTS:
                continue
            w_slot, x_slot = WEIGHT_SLOTS[op.type]
            w, x = op.input(w_slot)[0], op.input(x_slot)[0]
            w_src = producer.get(w)
            w_quant = w_src is not None and w_src.type in DEQUANT_OPS
            param = w_src.input("X")[0] if w_quant else w
            if not block.var(param).persistable:
                continue  # an activation x activation matmul (attention), no weight
            x_src = producer.get(x)
            found.append(WeightOp(
                op.type,
                # INT8 weights are stored as "<param>.quantized"
                param.split(".quantized")[0], w_quant,
                x_src is not None and x_src.type in DEQUANT_OPS))
        return found

