"""Fold BatchNorm into the conv before it, so QAT quantizes the weights deployment runs.

Pairs are found by running the model once: a ``BatchNorm2D`` whose input is exactly the output
tensor of a ``Conv2D`` is folded into it. Paddle's own ``fuse_conv_bn`` pairs layers by
registration order (any conv with the next BN in the list) and, in 3.3.1, fuses a copy that
it then discards, so segq does not use it.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn


def conv_bn_pairs(model: nn.Layer, sample: paddle.Tensor) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` for every BatchNorm2D fed directly by a Conv2D's output."""
    produced: dict[int, tuple[str, paddle.Tensor]] = {}
    pairs: list[tuple[str, str]] = []
    handles = []
    for name, layer in model.named_sublayers():
        if isinstance(layer, nn.Conv2D):
            def record(layer, inputs, output, name=name):
                produced[id(output)] = (name, output)  # keep the tensor so its id stays unique
            handles.append(layer.register_forward_post_hook(record))
        elif isinstance(layer, nn.BatchNorm2D):
            def match(layer, inputs, name=name):
                src = produced.get(id(inputs[0]))
                if src is not None and src[1] is inputs[0]:
                    pairs.append((src[0], name))
            handles.append(layer.register_forward_pre_hook(match))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    return pairs


def _fold(conv: nn.Conv2D, bn: nn.BatchNorm2D) -> None:
    gamma, beta = bn.weight.numpy(), bn.bias.numpy()
    mean, var = bn._mean.numpy(), bn._variance.numpy()
    factor = gamma / np.sqrt(var + bn._epsilon)
    weight = conv.weight.numpy() * factor.reshape(-1, *([1] * (conv.weight.ndim - 1)))
    bias = conv.bias.numpy() if conv.bias is not None else np.zeros_like(mean)
    if conv.bias is None:
        conv.bias = conv.create_parameter([conv._out_channels], is_bias=True)
    conv.weight.set_value(weight.astype("float32"))
    conv.bias.set_value((beta + (bias - mean) * factor).astype("float32"))


def fold_conv_bn(model: nn.Layer, sample: paddle.Tensor) -> list[tuple[str, str]]:
    """Fold each BN into its conv in place (BN becomes Identity) and return the pairs.

    Raises if the folded model's eval output on ``sample`` differs from the original's, which
    would mean a conv's output also fed something other than its BN."""
    pairs = conv_bn_pairs(model, sample)
    was_training = model.training
    model.eval()
    with paddle.no_grad():
        before = [o.numpy() for o in _outputs(model(sample))]
    layers = dict(model.named_sublayers())
    for conv_name, bn_name in pairs:
        _fold(layers[conv_name], layers[bn_name])
        parent_name, _, attr = bn_name.rpartition(".")
        parent = layers[parent_name] if parent_name else model
        setattr(parent, attr, nn.Identity())
    with paddle.no_grad():
        after = [o.numpy() for o in _outputs(model(sample))]
    if was_training:
        model.train()
    for b, a in zip(before, after):
        scale = max(1.0, float(np.abs(b).max()))
        if not np.allclose(a, b, rtol=1e-3, atol=1e-3 * scale):
            raise RuntimeError("folding BatchNorm into convs changed the model's output: some "
                               "conv output feeds more than its BatchNorm; set "
                               "quant.fuse_conv_bn: false for this model")
    return pairs


def _outputs(out) -> list[paddle.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]
