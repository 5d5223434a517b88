"""Read an export's ``deploy.yaml`` (written by segq.export, PaddleSeg-compatible)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..export import DEPLOY_FILE, OUTPUT_OPS
from ..inference import is_weight_only, model_files, yaml_error_line


@dataclass(frozen=True)
class DeployInfo:
    """What a predictor needs from an export directory."""

    deploy_file: Path
    model_dir: Path
    model_file: Path
    params_file: Path
    transforms: list[dict]
    output_op: str | None           # argmax | softmax | none; None if the file does not say
    input_shape: list[int] | None   # [N, C, H, W], -1 for dynamic dims
    quant: dict[str, Any] | None    # the Quant section of an INT8 export
    onnx_file: Path | None = None   # Deploy.onnx, written by segq.deploy.onnx_export
    argmax_before_resize: bool = False

    @property
    def is_quantized(self) -> bool:
        """Any quantized export: INT8 (QAT or PTQ) or weight-only."""
        return self.quant is not None

    @property
    def is_int8(self) -> bool:
        """An export that runs INT8 ops; a weight-only export stores INT8 weights but runs
        in float."""
        return self.quant is not None and not is_weight_only(self.quant)

    def require_onnx_file(self, user: str) -> Path:
        """The export's ONNX model, or an error telling ``user`` how to make it."""
        if self.onnx_file is None:
            raise ValueError(f"{user} runs the export's ONNX model, but {self.deploy_file} "
                             f"names none (Deploy.onnx): run deploy/python/export_onnx.py "
                             f"--model_dir {self.model_dir}")
        return self.onnx_file


def _deploy_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / DEPLOY_FILE
    elif path.name != DEPLOY_FILE and path.is_file():
        # the model files are found through <dir>/deploy.yaml (segq.inference.model_files)
        raise ValueError(f"{path}: expected an export's {DEPLOY_FILE} or its directory")
    if not path.is_file():
        raise FileNotFoundError(f"{DEPLOY_FILE} not found: {path} (export a model with "
                                f"export.py or slim/qat_export.py first)")
    return path


def load_deploy_info(path: str | os.PathLike) -> DeployInfo:
    """``path`` is an export directory or its ``deploy.yaml``; checks the keys a predictor
    reads and that the model files exist."""
    deploy_file = _deploy_path(path)
    try:
        content = yaml.safe_load(deploy_file.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{deploy_file}: not valid YAML: {yaml_error_line(e)}") from None
    info = content.get("Deploy") if isinstance(content, dict) else None
    if not isinstance(info, dict):
        raise ValueError(f"{deploy_file}: expected a 'Deploy:' mapping (model, params, "
                         f"transforms), got {type(info).__name__}")
    transforms = info.get("transforms") or []
    if not isinstance(transforms, list) or not all(
            isinstance(t, dict) and "type" in t for t in transforms):
        raise ValueError(f"{deploy_file}: Deploy.transforms must be a list of {{type: ...}} "
                         f"mappings, got {transforms!r}")
    output_op = info.get("output_op")
    if output_op is not None and output_op not in OUTPUT_OPS:
        raise ValueError(f"{deploy_file}: Deploy.output_op must be one of {OUTPUT_OPS}, "
                         f"got {output_op!r}")
    input_shape = info.get("input_shape")
    if input_shape is not None and (not isinstance(input_shape, list) or len(input_shape) != 4
                                    or not all(isinstance(d, int) for d in input_shape)):
        raise ValueError(f"{deploy_file}: Deploy.input_shape must be 4 ints [N, C, H, W] "
                         f"(-1 for dynamic), got {input_shape!r}")
    quant = content.get("Quant")
    if quant is not None and not isinstance(quant, dict):
        raise ValueError(f"{deploy_file}: the Quant section must be a mapping, got {quant!r}")
    model_file, params_file = model_files(deploy_file.parent)
    onnx_file = info.get("onnx")
    if onnx_file is not None:
        onnx_file = deploy_file.parent / str(onnx_file)
        if not onnx_file.is_file():
            raise FileNotFoundError(f"{deploy_file}: Deploy.onnx names {onnx_file}, which "
                                    f"does not exist (re-run the ONNX export)")
    return DeployInfo(deploy_file=deploy_file, model_dir=deploy_file.parent,
                      model_file=model_file, params_file=params_file,
                      transforms=[dict(t) for t in transforms], output_op=output_op,
                      input_shape=input_shape, quant=quant, onnx_file=onnx_file,
                      argmax_before_resize=bool(info.get("argmax_before_resize", False)))
