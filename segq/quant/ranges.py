"""Activation ranges on train crops against full eval frames, per sublayer: the check for
activations that fake quant (scales observed on train crops) would clip at evaluation.

A sublayer whose outputs on eval frames reach many times their train-crop maximum is either
seeing inputs it never trained on (e.g. an atrous conv whose outer taps read only padding on
small crops) or will lose accuracy to clipping once quantized."""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Iterable

import paddle


@dataclass(frozen=True)
class RangeRow:
    layer: str
    train_max: float   # max |output| over the train batches
    eval_max: float    # max |output| over the eval images
    ratio: float       # eval_max / train_max


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


def output_abs_max(model: paddle.nn.Layer, batches: Iterable[paddle.Tensor],
                   patterns: list[str]) -> dict[str, float]:
    """Max |output| of each sublayer whose name matches a pattern, over ``batches`` run in
    eval mode (no statistics change)."""
    maxima: dict[str, float] = {}
    handles = []
    for name, layer in model.named_sublayers():
        if not any(fnmatchcase(name, p) for p in patterns):
            continue

        def hook(_layer, _inputs, out, name=name):
            out = _first(out)
            if isinstance(out, paddle.Tensor) and out.dtype in (paddle.float32, paddle.float64):
                maxima[name] = max(maxima.get(name, 0.0), float(paddle.abs(out).max()))
        handles.append(layer.register_forward_post_hook(hook))
    if not handles:
        raise ValueError(f"no sublayer of {type(model).__name__} matches {patterns}")
    model.eval()
    try:
        with paddle.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for h in handles:
            h.remove()
    return maxima


def range_rows(model: paddle.nn.Layer, train_batches: Iterable[paddle.Tensor],
               eval_batches: Iterable[paddle.Tensor], patterns: list[str]) -> list[RangeRow]:
    """Per matched sublayer, train-crop against eval-frame output range, largest ratio first."""
    train = output_abs_max(model, train_batches, patterns)
    evals = output_abs_max(model, eval_batches, patterns)
    rows = [RangeRow(name, train[name], evals[name], evals[name] / max(train[name], 1e-12))
            for name in train if name in evals]
    return sorted(rows, key=lambda r: r.ratio, reverse=True)


def ranges_markdown(rows: list[RangeRow], top: int) -> str:
    lines = ["| sublayer | max abs, train crops | max abs, eval frames | eval / train |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r.layer} | {r.train_max:.2f} | {r.eval_max:.2f} | {r.ratio:.2f} |"
              for r in rows[:top]]
    return "\n".join(lines)
