"""How much of an INT8 model's mIoU comes from arg max ties on quantized logits.

When a quantizer sits right before the arg max (ONNX Runtime's ``quantize_static`` puts one
there by default), the scores lie on a uint8 grid: pixels whose two best classes are closer
than one step tie, and ArgMax gives every tie to the lowest class id. That is a class prior,
not quantization accuracy, and on a dataset whose low ids are large classes it can add
mIoU. This study scores one such model with its ties given to the lowest id (as deployed),
to the highest id, and broken by the float scores the quantizer rounds; the last is the
model's accuracy without the tie rule.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..builders import build_dataset
from ..config import SegConfig
from ..deploy.onnx_backend import ort_session
from ..deploy.onnx_graph import argmax_quantizer
from ..deploy.postprocess import label_map
from ..metrics import EvalResult, confusion_matrix

RULES = ("lowest id (as deployed)", "highest id", "float scores")


@dataclass(frozen=True)
class TieStudy:
    tied_fraction: float           # pixels whose two best quantized scores are equal
    # by tie rule (RULES); monotone rounding keeps every other pixel's order, so "float
    # scores" is also the arg max of the float scores
    miou: dict[str, float]
    num_images: int


def tie_predictions(scores: np.ndarray, quantized: np.ndarray) -> tuple[dict, np.ndarray]:
    """Class maps ``[H, W]`` of one image's ``[C, H, W]`` quantized scores under each tie
    rule (``scores``: the float values they were rounded from), and the tie mask."""
    top2 = np.sort(quantized, axis=0)[-2:]
    tied = top2[1] == top2[0]
    low = quantized.argmax(0)
    high = quantized.shape[0] - 1 - quantized[::-1].argmax(0)
    maps = {RULES[0]: low, RULES[1]: high, RULES[2]: np.where(tied, scores.argmax(0), low)}
    return maps, tied


def argmax_tie_study(cfg: SegConfig, onnx_file: str | os.PathLike,
                     cpu_threads: int = 2) -> TieStudy:
    """Score ``onnx_file`` (an ONNX model whose arg max reads quantized scores) on the val
    dataset under each tie rule."""
    model = onnx.load(str(onnx_file))
    pair = argmax_quantizer(model.graph)
    if pair is None:
        raise ValueError(f"{onnx_file}: its ArgMax reads float scores, not the output of a "
                         f"DequantizeLinear: there are no quantization ties to study")
    for name in pair:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort_session(model.SerializeToString(), cpu_threads)
    feed = session.get_inputs()[0].name
    dataset = build_dataset(cfg.val_dataset, "val_dataset")
    k = dataset.num_classes
    confusion: dict[str, np.ndarray] = {}
    tied = pixels = 0
    for i in range(len(dataset)):
        sample = dataset[i]
        image = np.asarray(sample["img"], np.float32)[None]
        scores, quantized = session.run(list(pair), {feed: image})
        if quantized.ndim != 4 or quantized.shape[1] != k:
            # e.g. a transpose between the quantizer and the arg max: the rules below take
            # the classes on axis 1
            raise ValueError(f"{onnx_file}: the quantized scores {pair[1]} have shape "
                             f"{list(quantized.shape)}, expected [N, {k} classes, H, W]")
        maps, ties = tie_predictions(scores[0], quantized[0])
        tied, pixels = tied + int(ties.sum()), pixels + ties.size
        label = sample.get("ori_label", sample["label"])
        for rule, pred in maps.items():
            pred = label_map(pred, sample.get("trans_info"))
            confusion[rule] = confusion.get(rule, 0) + confusion_matrix(
                pred, label, k, dataset.ignore_index)
    return TieStudy(tied / max(pixels, 1),
                    {rule: EvalResult.from_confusion(c, len(dataset)).miou
                     for rule, c in confusion.items()}, len(dataset))


def tie_markdown(studies: dict[str, TieStudy]) -> str:
    """One row per model: the tied pixels and the mIoU under each tie rule."""
    lines = ["| model | pixels with tied top-2 scores | "
             + " | ".join(f"mIoU, ties to the {r}" if r != RULES[2]
                          else "mIoU, ties broken by the float scores" for r in RULES) + " |",
             "|---|---:|" + "---:|" * len(RULES)]
    lines += [f"| {name} | {s.tied_fraction:.2%} | "
              + " | ".join(f"{s.miou[r]:.4f}" for r in RULES) + " |"
              for name, s in studies.items()]
    return "\n".join(lines)
