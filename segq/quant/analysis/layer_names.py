"""Which dygraph sublayer each conv / matmul op of an exported program came from.

Export traces ``forward`` once, so the program's layer ops appear in the order the model
calls its ``Conv2D`` and ``Linear`` sublayers; recording that order with forward hooks gives
every program layer its sublayer name (the names ``quant.skip_layers`` takes). A sublayer
called twice owns two program layers.
"""
from __future__ import annotations

import paddle


def layer_call_order(model: paddle.nn.Layer, input_shape) -> list[str]:
    """Names of the ``Conv2D`` / ``Linear`` sublayers of ``model`` in call order, one per
    call, from one forward pass on zeros of ``input_shape`` (model left in eval mode)."""
    calls: list[str] = []
    hooks = []
    for name, layer in model.named_sublayers():
        if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Linear)):
            hooks.append(layer.register_forward_post_hook(
                lambda _layer, _inputs, _output, name=name: calls.append(name)))
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(list(input_shape), dtype="float32"))
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def name_program_layers(program_layers, call_order: list[str], model_dir) -> list[str]:
    """One sublayer name per program layer; a different count is an error naming both."""
    if len(program_layers) != len(call_order):
        raise ValueError(
            f"{model_dir}: the exported program has {len(program_layers)} conv/matmul layers "
            f"with weights but the config's model calls {len(call_order)} Conv2D/Linear "
            f"sublayers: the export was not made from this config's model")
    return list(call_order)


def fp32_model_and_val_set(cfg, fp32_weights: str):
    """The config's FP32 model with ``fp32_weights`` (eval mode) and its val dataset: what
    the report and the fallback compare the INT8 model against."""
    from ...builders import build_dataset, build_model_for

    dataset = build_dataset(cfg.val_dataset, "val_dataset")
    model = build_model_for(cfg, fp32_weights)
    model.eval()
    return model, dataset
