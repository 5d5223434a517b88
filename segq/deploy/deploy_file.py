"""``deploy.yaml``, the file that describes an export (PaddleSeg-compatible): its names, its
one reader and its one writer.

``Deploy:`` is what PaddleSeg's and FastDeploy's predictors read (model and params files,
transforms, input shape with -1 for dynamic dims, output op); segq adds ``onnx`` (the ONNX
model beside the Paddle files) and ``argmax_before_resize``, and a quantized export has a
top-level ``Quant:`` section (method, algorithm, skipped layers, ...).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

MODEL_FILE = "model.pdmodel"
PARAMS_FILE = "model.pdiparams"
DEPLOY_FILE = "deploy.yaml"
OUTPUT_OPS = ("argmax", "softmax", "none")
# Quant.method of a weight-only export (slim/ptq.py --weight_only)
WEIGHT_ONLY = "weight_only"


def yaml_error_line(e: yaml.YAMLError) -> str:
    """PyYAML's multi-line message (with a caret drawing) as one line: problem and place."""
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or " ".join(str(e).split())
    return f"{problem}{where}"


def is_weight_only(quant) -> bool:
    """Whether a ``Quant:`` section describes a weight-only export: INT8 weights in the
    params file, float inference."""
    return isinstance(quant, dict) and quant.get("method") == WEIGHT_ONLY


def read_deploy_file(model_dir: str | os.PathLike) -> dict | None:
    """The parsed deploy.yaml of an export directory, ``None`` if it has none (not a segq
    export); the one place the file is parsed."""
    deploy = Path(model_dir) / DEPLOY_FILE
    if not deploy.is_file():
        return None
    try:
        content = yaml.safe_load(deploy.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{deploy}: not valid YAML: {yaml_error_line(e)}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{deploy}: expected a mapping with a 'Deploy:' section, "
                         f"got {type(content).__name__}")
    return content


def write_deploy_file(path: str | os.PathLike, content: dict[str, Any]) -> None:
    """Write ``content`` to ``path`` atomically (a reader sees the old file or the new one);
    the one place the file is written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(content, f, sort_keys=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def deploy_section(input_shape: Sequence[int], output_op: str, transforms: list[dict],
                   argmax_before_resize: bool | float = False) -> dict[str, Any]:
    """The ``Deploy:`` section of a new export (transforms already resolved; ``output_op``
    already checked by the export's ``InferenceWrapper``)."""
    return {
        "model": MODEL_FILE,
        "params": PARAMS_FILE,
        "transforms": transforms,
        "input_shape": list(input_shape),
        "output_op": output_op,
        "output_dtype": "int32" if output_op == "argmax" else "float32",
        **({"argmax_before_resize": argmax_before_resize} if argmax_before_resize else {}),
    }


def set_onnx_file(model_dir: str | os.PathLike, onnx_name: str,
                  int8_layout: dict | None = None) -> None:
    """Name the export's ONNX model in its deploy.yaml (``Deploy.onnx``) and record how its
    INT8 graph was laid out (``Deploy.onnx_int8_layout``; absent: as Paddle exported it)."""
    content = read_deploy_file(model_dir)
    if content is None or not isinstance(content.get("Deploy"), dict):
        raise ValueError(f"{Path(model_dir) / DEPLOY_FILE}: no 'Deploy:' section to name "
                         f"the ONNX model in")
    content["Deploy"]["onnx"] = onnx_name
    content["Deploy"].pop("onnx_int8_layout", None)
    if int8_layout:
        content["Deploy"]["onnx_int8_layout"] = int8_layout
    write_deploy_file(Path(model_dir) / DEPLOY_FILE, content)


def model_files(model_dir: str | os.PathLike) -> tuple[Path, Path]:
    """The model and params files of an export, named by its deploy.yaml when present."""
    model_dir = Path(model_dir)
    info = (read_deploy_file(model_dir) or {}).get("Deploy")
    info = info if isinstance(info, dict) else {}  # load_deploy_info reports bad ones
    paths = (model_dir / info.get("model", MODEL_FILE),
             model_dir / info.get("params", PARAMS_FILE))
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"inference model file not found: {path} "
                                    f"(export a model to {model_dir} first)")
    return paths


def model_path_prefix(model_dir: str | os.PathLike) -> str:
    """The common path prefix of an export's model and params files, as
    ``paddle.static.load_inference_model`` takes it."""
    model_file, params_file = model_files(model_dir)
    if model_file.with_suffix("") != params_file.with_suffix(""):
        raise ValueError(f"{model_file} and {params_file} must share a path prefix")
    return str(model_file.with_suffix(""))


def is_weight_only_export(model_dir: str | os.PathLike) -> bool:
    return is_weight_only((read_deploy_file(model_dir) or {}).get("Quant"))


def require_quantized_export(model_dir: str | os.PathLike, asked: str = "int8=True",
                             fp32_instead: str = "int8=False") -> None:
    """Refuse an INT8 run of a float export. oneDNN finds no quantized ops in it and runs it
    in FP32, so whatever is reported as INT8 would be FP32 numbers. An export is quantized
    when its deploy.yaml has the ``Quant:`` section slim/qat_export.py and slim/ptq.py write,
    except a weight-only one (``Quant.method: weight_only``): its INT8 weights are
    dequantized on load and it runs in float. A directory without deploy.yaml (not a segq
    export) cannot tell and is let through."""
    content = read_deploy_file(model_dir)
    if content is None:
        return
    if content.get("Quant") is None:
        raise ValueError(f"{asked} needs a quantized export, but {model_dir} is FP32 (its "
                         f"{DEPLOY_FILE} has no 'Quant:' section): use {fp32_instead}, or "
                         f"make an INT8 export with slim/qat_export.py (quantization-aware "
                         f"training) or slim/ptq.py (post-training quantization)")
    if is_weight_only(content["Quant"]):
        raise ValueError(f"{asked} on {model_dir}: a weight-only export runs in float: use "
                         f"{fp32_instead}")


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
    argmax_before_resize: bool | float = False  # True, or the fraction of the input size

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
        # the model files are found through <dir>/deploy.yaml (model_files)
        raise ValueError(f"{path}: expected an export's {DEPLOY_FILE} or its directory")
    if not path.is_file():
        raise FileNotFoundError(f"{DEPLOY_FILE} not found: {path} (export a model with "
                                f"export.py or slim/qat_export.py first)")
    return path


def load_deploy_info(path: str | os.PathLike, require_onnx: bool = True) -> DeployInfo:
    """``path`` is an export directory or its ``deploy.yaml``; checks the keys a predictor
    reads and that the model files exist (with ``require_onnx=False``, as the ONNX export
    reads it, a missing ONNX file is only left out)."""
    deploy_file = _deploy_path(path)
    content = read_deploy_file(deploy_file.parent)
    info = content.get("Deploy")
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
            if not require_onnx:
                onnx_file = None
            else:
                raise FileNotFoundError(f"{deploy_file}: Deploy.onnx names {onnx_file}, "
                                        f"which does not exist (re-run the ONNX export)")
    return DeployInfo(deploy_file=deploy_file, model_dir=deploy_file.parent,
                      model_file=model_file, params_file=params_file,
                      transforms=[dict(t) for t in transforms], output_op=output_op,
                      input_shape=input_shape, quant=quant, onnx_file=onnx_file,
                      argmax_before_resize=info.get("argmax_before_resize") or False)
