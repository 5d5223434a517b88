"""One program layer recomputed on its FP32 input with only its own quantizers: the
"isolated" error of that layer, free of everything upstream."""
from __future__ import annotations

import numpy as np
import paddle

from .program import ProgramLayer


def fake_quant(x: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """Quantize-dequantize with a symmetric scale (the abs max the quantizer maps to the
    largest integer), as Paddle's quantize_linear / dequantize_linear pair computes."""
    bound = 2 ** (bits - 1) - 1
    return (np.clip(np.round(x / scale * bound), -bound, bound) * (scale / bound)).astype(
        np.float32)


def run_layer(layer: ProgramLayer, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``layer``'s op (conv or matmul, no bias: the program adds it in a separate op)."""
    a = layer.attrs
    with paddle.no_grad():
        xt, wt = paddle.to_tensor(x), paddle.to_tensor(weight)
        if layer.op_type in ("conv2d", "depthwise_conv2d"):
            algo = a.get("padding_algorithm", "EXPLICIT")
            padding = algo if algo in ("SAME", "VALID") else a["paddings"]
            out = paddle.nn.functional.conv2d(xt, wt, stride=a["strides"], padding=padding,
                                              dilation=a["dilations"], groups=a["groups"],
                                              data_format=a.get("data_format", "NCHW"))
        elif layer.op_type in ("matmul_v2", "matmul"):
            out = paddle.matmul(xt, wt, transpose_x=a.get("trans_x", False),
                                transpose_y=a.get("trans_y", False))
        else:  # mul: the input flattened to 2-D
            out = paddle.matmul(xt.reshape([xt.shape[0], -1]), wt)
        return out.numpy()


def isolated_output(layer: ProgramLayer, x_fp32: np.ndarray,
                    weight_quantized: np.ndarray) -> np.ndarray:
    """The layer's output with its input and weight quantized and everything before it in
    float; a layer the export keeps in float returns its FP32 output."""
    x = x_fp32 if layer.act_scale is None else fake_quant(x_fp32, layer.act_scale,
                                                          layer.act_bits)
    return run_layer(layer, x, weight_quantized)
