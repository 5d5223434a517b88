"""Export a segq model as a legacy ``.pdmodel`` inference model with PaddleSeg's ``deploy.yaml``.

The legacy format (not Paddle 3's PIR ``.json``) is the one oneDNN, PaddleSlim's
``quant_post_static`` and quantized inference accept, so everything is saved under
``paddle.pir_utils.OldIrGuard()``.

Output of the exported model, selected like PaddleSeg's ``--without_argmax``/``--with_softmax``:

* ``output_op: argmax`` (default): ``[N, H, W]`` int32 label map, as PaddleSeg exports it.
* ``output_op: softmax``: ``[N, C, H, W]`` float32 probabilities.
* ``output_op: none``: ``[N, C, H, W]`` float32 logits.

``argmax_before_resize`` (argmax only) takes the arg max at the logits' own resolution and
resizes the label map (nearest) to the input size, instead of bilinearly resizing all C
channels of logits and taking the arg max there: at 1/8 resolution the resize and arg max
cost 1/64 as much, at a small mIoU cost along class boundaries (measured by the deployment
benchmark). A fraction ``s`` (0 < s < 1) instead of ``True`` first resizes the logits
bilinearly to ``s`` x the input size and takes the arg max there: most of the saving at 1/2
or 1/4, and the boundaries come back. ``deploy.yaml`` records it.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..models import legacy_ops
from ..models.layers import spatial_size
from .deploy_file import (DEPLOY_FILE, MODEL_FILE, OUTPUT_OPS, PARAMS_FILE, deploy_section,
                          write_deploy_file)


def argmax_channels(x: paddle.Tensor) -> paddle.Tensor:
    """Class index along axis 1 of ``[N, C, H, W]`` as an int32 ``[N, H, W]`` map (through
    ``legacy_ops.argmax``: ``paddle.argmax`` does not build under the legacy exporter)."""
    return legacy_ops.argmax(x, axis=1)


def argmax_scale(argmax_before_resize: bool | float) -> float | None:
    """The fraction of the input size the arg max is taken at, or None for the logits' own
    resolution (``True``) or no early arg max (``False``)."""
    if isinstance(argmax_before_resize, bool):
        return None
    scale = float(argmax_before_resize)
    if not 0.0 < scale < 1.0:
        raise ValueError(f"argmax_before_resize: expected true or a fraction of the input "
                         f"size between 0 and 1 (e.g. 0.5), got {argmax_before_resize!r}")
    return scale


def output_op_for(with_softmax: bool = False, without_argmax: bool = False) -> str:
    """PaddleSeg's flags -> ``argmax`` | ``softmax`` | ``none`` (argmax wins over softmax,
    which would not change the arg max)."""
    if not without_argmax:
        return "argmax"
    return "softmax" if with_softmax else "none"


class InferenceWrapper(nn.Layer):
    """Keep the model's main output and append the selected output op (see module doc)."""

    def __init__(self, model: nn.Layer, output_op: str = "argmax",
                 argmax_before_resize: bool | float = False):
        super().__init__()
        if output_op not in OUTPUT_OPS:
            raise ValueError(f"output_op must be one of {OUTPUT_OPS}, got {output_op!r}")
        if argmax_before_resize and output_op != "argmax":
            raise ValueError(f"argmax_before_resize needs the argmax output, got output_op "
                             f"{output_op!r} (drop --without_argmax / --with_softmax)")
        self.model = model
        self.output_op = output_op
        self.argmax_scale = argmax_scale(argmax_before_resize)
        self.argmax_before_resize = bool(argmax_before_resize)
        self.softmax = nn.Softmax(axis=1)

    def _low_res_label_map(self, x):
        previous = getattr(self.model, "resize_logits_to_input", True)
        self.model.resize_logits_to_input = False  # read by layers.resize_logits
        try:
            out = self.model(x)
        finally:
            self.model.resize_logits_to_input = previous
        out = out[0] if isinstance(out, (list, tuple)) else out
        if self.argmax_scale is not None:
            size = paddle.cast(paddle.cast(spatial_size(x), "float32") * self.argmax_scale,
                               "int32")
            out = F.interpolate(out, size, mode="bilinear", align_corners=False)
        label = argmax_channels(out)
        # for integer scale factors nearest's floor mapping is also the pixel-centre mapping
        label = F.interpolate(paddle.cast(label.unsqueeze(1), "float32"), spatial_size(x),
                              mode="nearest")
        return paddle.cast(label.squeeze(1), "int32")

    def forward(self, x):
        if self.argmax_before_resize:
            return self._low_res_label_map(x)
        out = self.model(x)
        if isinstance(out, (list, tuple)):
            out = out[0]  # main output; auxiliary heads are training-only
        if self.output_op == "argmax":
            return argmax_channels(out)
        if self.output_op == "softmax":
            return self.softmax(out)
        return out


def normalize_input_shape(input_shape: Sequence[int | None] | None,
                          in_channels: int = 3) -> list[int]:
    """``None`` -> ``[-1, in_channels, -1, -1]``; ``None`` dims become ``-1`` (dynamic)."""
    if input_shape is None:
        return [-1, in_channels, -1, -1]
    shape = [-1 if d is None else int(d) for d in input_shape]
    if len(shape) != 4 or any(d == 0 or d < -1 for d in shape) or shape[1] == -1:
        raise ValueError(f"input_shape must be [N, C, H, W] with positive sizes or -1 for a "
                         f"dynamic N/H/W (C fixed), got {list(input_shape)}")
    return shape


@contextlib.contextmanager
def legacy_static():
    """Paddle's legacy static graph (the ``.pdmodel`` world of Paddle Inference and
    PaddleSlim's tools) for the block; dynamic mode comes back after it if it was on."""
    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        with paddle.pir_utils.OldIrGuard():
            yield
    finally:
        if was_dynamic:
            paddle.disable_static()


def save_legacy_inference_model(layer: nn.Layer, path_prefix: str | os.PathLike,
                                input_shape: Sequence[int]) -> None:
    """``paddle.jit.save`` ``layer`` (already in eval mode) as ``{path_prefix}.pdmodel`` +
    ``.pdiparams`` in the legacy program format."""
    spec = [paddle.static.InputSpec(shape=[None if d == -1 else d for d in input_shape],
                                    dtype="float32", name="x")]
    with paddle.pir_utils.OldIrGuard():
        static_layer = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
        paddle.jit.save(static_layer, str(path_prefix))


# (layer in eval mode, path prefix, [N, C, H, W] with -1 for dynamic dims) -> writes the files
Saver = Callable[[nn.Layer, Path, list[int]], None]


def _yaml_value(value: Any) -> Any:
    """Tuples (signature defaults such as ``(0.5, 0.5, 0.5)``) as YAML lists."""
    if isinstance(value, (list, tuple)):
        return [_yaml_value(v) for v in value]
    return value


# Label-only arguments the dataset fills with its ignore index (segq/data/dataset.py), not
# with the signature default: deployment has no labels, and 255 could be a wrong claim.
DATASET_FILLED_ARGS = ("label_padding_value", "ignore_index")


def resolved_transform(spec: dict) -> dict:
    """``spec`` with every argument it leaves out set to the registered transform's default,
    so deploy.yaml states the values the model was trained with (a bare ``Normalize`` would
    make tools outside segq guess its mean and std)."""
    from ..data import transforms as _registers_transforms  # noqa: F401
    from ..registry import TRANSFORMS

    if "type" not in spec:
        raise ValueError(f"each deploy transform needs a 'type' key, got {spec}")
    params = inspect.signature(TRANSFORMS.get(spec["type"])).parameters
    defaults = {name: _yaml_value(p.default) for name, p in params.items()
                if p.default is not p.empty and name not in spec
                and name not in DATASET_FILLED_ARGS}
    return {**spec, **defaults}


def deploy_info(input_shape: Sequence[int], output_op: str,
                transforms: list[dict] | None = None,
                argmax_before_resize: bool | float = False) -> dict[str, Any]:
    """The ``deploy.yaml`` content of a new export, its transforms resolved
    (:func:`resolved_transform`); other tools' sections go beside ``Deploy``."""
    transforms = [resolved_transform(dict(t)) for t in (transforms or [])]
    return {"Deploy": deploy_section(input_shape, output_op, transforms, argmax_before_resize)}


def _publish(tmp_dir: Path, save_dir: Path) -> None:
    """Move a finished export into ``save_dir`` so readers never see half-written files."""
    if not save_dir.exists():
        os.replace(tmp_dir, save_dir)  # one atomic rename on the same filesystem
        return
    # save_dir exists (maybe with other files): replace file by file, deploy.yaml last,
    # so a reader that finds the new deploy.yaml also finds the new model.
    names = sorted(p.name for p in tmp_dir.iterdir())
    names.sort(key=lambda n: n == DEPLOY_FILE)
    for name in names:
        os.replace(tmp_dir / name, save_dir / name)
    shutil.rmtree(tmp_dir, ignore_errors=True)


@dataclass(frozen=True)
class ExportOptions:
    """What an export produces (PaddleSeg's export flags).

    Args:
        input_shape: ``[N, C, H, W]``, -1 (or ``None``) for a dynamic dim; default dynamic.
        with_softmax: probabilities instead of logits when ``without_argmax``.
        without_argmax: scores ``[N, C, H, W]`` instead of the label map ``[N, H, W]``.
        argmax_before_resize: ``True`` or a fraction of the input size (see the module doc).
    """

    input_shape: Sequence[int | None] | None = None
    with_softmax: bool = False
    without_argmax: bool = False
    argmax_before_resize: bool | float = False

    @property
    def output_op(self) -> str:
        return output_op_for(self.with_softmax, self.without_argmax)


@dataclass(frozen=True)
class ModelWriter:
    """How an export's model files are written and which sections deploy.yaml gets beside
    ``Deploy``: a float export's (the default), a QAT export's (Paddle's quantized saver and a
    ``Quant`` section), or a PTQ export's (copies of PaddleSlim's quantized program)."""

    save: Saver = save_legacy_inference_model
    sections: dict[str, Any] = field(default_factory=dict)


def export_inference_model(model: nn.Layer, save_dir: str | os.PathLike,
                           options: ExportOptions = ExportOptions(),
                           deploy_transforms: list[dict] | None = None,
                           writer: ModelWriter = ModelWriter()) -> Path:
    """Export ``model`` to ``save_dir`` as ``model.pdmodel``/``model.pdiparams`` (legacy
    format) plus ``deploy.yaml``; returns ``save_dir`` as a Path.

    The model is traced in eval mode and put back into the mode it was in. Files are written
    to a temporary sibling directory first, so an interrupted export leaves ``save_dir`` as
    it was.
    """
    save_dir = Path(save_dir)
    shape = normalize_input_shape(options.input_shape, getattr(model, "in_channels", 3))
    output_op = options.output_op
    info = {**deploy_info(shape, output_op, deploy_transforms, options.argmax_before_resize),
            **writer.sections}

    save_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{save_dir.name}.tmp-", dir=save_dir.parent))
    os.chmod(tmp_dir, 0o755)  # mkdtemp's 0700 would survive the rename
    was_training = model.training
    try:
        wrapper = InferenceWrapper(model, output_op, options.argmax_before_resize)
        wrapper.eval()
        writer.save(wrapper, tmp_dir / Path(MODEL_FILE).stem, shape)
        for name in (MODEL_FILE, PARAMS_FILE):
            if not (tmp_dir / name).is_file() or (tmp_dir / name).stat().st_size == 0:
                raise RuntimeError(f"paddle.jit.save wrote no {name} in {tmp_dir}")
        write_deploy_file(tmp_dir / DEPLOY_FILE, info)
        _publish(tmp_dir, save_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if was_training:
            model.train()
    return save_dir
