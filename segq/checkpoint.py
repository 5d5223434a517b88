"""Checkpoints: strict weight loading with a clear report, atomic saving, exact resume.

A checkpoint is a directory holding ``model.pdparams``, ``model.pdopt`` (optimizer state,
including the lr schedule) and ``state.json`` (iteration, best mIoU, RNG state). It is
written to ``<dir>.tmp`` and renamed into place, so a crash never leaves a half-written
checkpoint or best model behind.

Every file is read with :mod:`segq.safe_load`, never ``paddle.load``: weights come from
outside (``--model_path``, ``--resume_model``, ``pretrained`` URLs) and unpickling a crafted
file would run its code.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from . import safe_load


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, unsafe or does not fit the model."""


def read_file(path: str | Path):
    """``paddle.load(path)`` without executing anything from the file (see safe_load)."""
    try:
        return safe_load.load(path)
    except pickle.UnpicklingError as e:  # incl. UnsafeWeightsError; the message names the file
        raise CheckpointError(str(e)) from None


def _model_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "model.pdparams"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_weights(model: paddle.nn.Layer, path: str | Path, strict: bool = True,
                 key_filter=None) -> dict[str, list[str]]:
    """Load ``path`` (a ``.pdparams`` file or a checkpoint dir) into ``model``.

    With ``strict`` any missing, unexpected or mis-shaped key raises, naming them all.
    ``key_filter(name) -> bool`` drops state-dict keys before matching (e.g. a head
    trained for other classes). Returns the report.
    """
    file = _model_file(path)
    state = _weights_dict(file, read_file(file))
    if key_filter is not None:
        state = {k: v for k, v in state.items() if key_filter(k)}
    own = model.state_dict()
    report = {
        "missing": sorted(k for k in own if k not in state),
        "unexpected": sorted(k for k in state if k not in own),
        "shape_mismatch": sorted(
            f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
            for k in own if k in state and list(state[k].shape) != list(own[k].shape)),
    }
    if strict and any(report.values()):
        raise CheckpointError(_quant_kind_mismatch(file, own, state)
                              or _mismatch_line(file, model, report))
    usable = {k: v for k, v in state.items()
              if k in own and list(v.shape) == list(own[k].shape)}
    model.set_state_dict(usable)
    return report


def _weights_dict(file: Path, state) -> dict:
    # e.g. an optimizer file or rng.pdstate given as --model_path: say so, not a KeyError later
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} holds no state dict of weights (a {type(state).__name__})")
    for key, value in state.items():
        if not isinstance(value, paddle.Tensor):
            raise CheckpointError(f"{file} is not a weights file: its entry {key!r} is a "
                                  f"{type(value).__name__}, not a tensor")
    return state


def _mismatch_line(file: Path, model: paddle.nn.Layer, report: dict[str, list[str]]) -> str:
    # one line: the CLI prints it after "error: "; the first keys of each kind are enough
    parts = [f"{kind} ({len(keys)}): {', '.join(keys[:10])}{', ...' if len(keys) > 10 else ''}"
             for kind, keys in report.items() if keys]
    return f"weights in {file} do not match {type(model).__name__}: " + "; ".join(parts)


# PaddleSlim's QAT adds per-layer scale and observer state under these attribute names
# (``conv._layer._fake_quant_weight._scale``, ``conv._ma_output_scale._accum``, PACT's
# ``_act_preprocess``); an FP32 state dict never has them and a QAT one always does.
_QUANT_PARTS = ("._fake_quant_", "._ma_output_scale.", "._act_preprocess")


def _has_quant_state(keys) -> bool:
    return any(part in key for key in keys for part in _QUANT_PARTS)


def _quant_kind_mismatch(file: Path, own: dict, state: dict) -> str | None:
    """The one-line explanation when an FP32 checkpoint meets a QAT model or the reverse,
    instead of a list of hundreds of missing or unexpected fake-quant keys."""
    model_quant, file_quant = _has_quant_state(own), _has_quant_state(state)
    if model_quant and not file_quant and state:
        return (f"{file} is an FP32 checkpoint (it has no fake-quant scales): use val.py/"
                f"export.py for it, or run slim/qat_train.py --model_path {file} first")
    if file_quant and not model_quant:
        return (f"{file} is a QAT checkpoint (it has fake-quant scales): use slim/qat_val.py/"
                f"slim/qat_export.py for it (slim/qat_train.py --resume_model continues it)")
    return None


@dataclass
class TrainState:
    iteration: int = 0
    best_miou: float = -1.0
    best_iter: int = -1
    extra: dict[str, Any] = field(default_factory=dict)


# Paddle keys optimizer accumulators by the parameter's global name (``conv2d_12.w_0_velocity_0``),
# which depends on how many layers the process built before: a model rebuilt elsewhere (a new
# process, or after quantization wrappers) gets other names. Checkpoints store them by the
# parameter's structured name instead (``head.conv.weight@velocity_0``).
def _param_names(model: paddle.nn.Layer) -> list[tuple[str, str]]:
    if isinstance(model, paddle.DataParallel):  # same names with or without data parallel
        model = model._layers
    pairs = [(p.name, name) for name, p in model.named_parameters()]
    return sorted(pairs, key=lambda pair: -len(pair[0]))  # longest first: no prefix clashes


def _optimizer_state_to_structured(state: dict, model: paddle.nn.Layer) -> dict:
    names = _param_names(model)
    out = {}
    for key, value in state.items():
        for global_name, structured in names:
            if key.startswith(global_name + "_"):
                key = f"{structured}@{key[len(global_name) + 1:]}"
                break
        out[key] = value
    return out


def _optimizer_state_from_structured(state: dict, model: paddle.nn.Layer) -> dict:
    to_global = {structured: global_name for global_name, structured in _param_names(model)}
    out = {}
    for key, value in state.items():
        structured, sep, suffix = key.partition("@")
        if sep:
            if structured not in to_global:
                raise CheckpointError(f"optimizer state for unknown parameter '{structured}'")
            key = f"{to_global[structured]}_{suffix}"
        out[key] = value
    return out


def _atomic_dir_write(target: Path, write_fn) -> None:
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_fn(tmp)
    for f in tmp.iterdir():  # make sure bytes are on disk before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    old = target.with_name(target.name + ".old")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def save_checkpoint(target: str | Path, model: paddle.nn.Layer,
                    optimizer: paddle.optimizer.Optimizer | None, state: TrainState) -> Path:
    target = Path(target)

    def write(tmp: Path) -> None:
        paddle.save(model.state_dict(), str(tmp / "model.pdparams"))
        if optimizer is not None:
            paddle.save(_optimizer_state_to_structured(optimizer.state_dict(), model),
                        str(tmp / "model.pdopt"))
        paddle.save({"paddle_rng": paddle.get_rng_state()}, str(tmp / "rng.pdstate"))
        with open(tmp / "state.json", "w", encoding="utf-8") as f:
            json.dump(asdict(state), f, indent=2)

    _atomic_dir_write(target, write)
    return target


def resume_checkpoint(path: str | Path, model: paddle.nn.Layer,
                      optimizer: paddle.optimizer.Optimizer | None) -> TrainState:
    """Restore model, optimizer (with lr schedule) and RNG from a checkpoint dir."""
    path = Path(path)
    _check_resume_dir(path, optimizer is not None)
    load_weights(model, path, strict=True)
    if optimizer is not None:
        state = read_file(path / "model.pdopt")
        if not isinstance(state, dict):
            raise CheckpointError(f"{path / 'model.pdopt'} holds no optimizer state dict")
        with warnings.catch_warnings():
            # Paddle's LinearWarmup nests its inner schedule's state under "LinearWarmup_LR",
            # which the base class's set_state_dict calls unused before LinearWarmup restores
            # it: a false alarm on every warm-up run's resume (exactness: test_training.py)
            warnings.filterwarnings("ignore", message="There are some unused values in state")
            optimizer.set_state_dict(_optimizer_state_from_structured(state, model))
    if (path / "rng.pdstate").is_file():
        paddle.set_rng_state(_rng_state(path / "rng.pdstate"))
    try:
        with open(path / "state.json", encoding="utf-8") as f:
            return TrainState(**json.load(f))
    except (ValueError, TypeError) as e:  # bad JSON, or keys TrainState does not have
        raise CheckpointError(f"cannot resume from {path}: state.json is unreadable "
                              f"({e})") from None


def _check_resume_dir(path: Path, with_optimizer: bool) -> None:
    if not path.exists():
        raise CheckpointError(f"cannot resume from {path}: the directory does not exist")
    if not path.is_dir():
        raise CheckpointError(f"cannot resume from {path}: not a directory (give the "
                              f"checkpoint dir, e.g. output/iter_1000, not a file in it)")
    for name in ("model.pdparams", "state.json") + (("model.pdopt",) if with_optimizer else ()):
        if not (path / name).is_file():
            raise CheckpointError(f"cannot resume from {path}: {name} is missing "
                                  f"(expected a checkpoint dir written by training)")


def _rng_state(file: Path) -> list:
    from paddle.base.libpaddle import GeneratorState

    state = read_file(file)
    rng = state.get("paddle_rng") if isinstance(state, dict) else None
    if not isinstance(rng, list) or not rng or not all(isinstance(g, GeneratorState) for g in rng):
        raise CheckpointError(f"{file} holds no random generator state")
    return rng


def copy_checkpoint(src: str | Path, target: str | Path) -> Path:
    """Atomically publish a copy of checkpoint ``src`` as ``target`` (e.g. ``best_model``)."""
    src, target = Path(src), Path(target)

    def write(tmp: Path) -> None:
        for f in src.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)

    _atomic_dir_write(target, write)
    return target


def iteration_checkpoints(run_dir: str | Path) -> list[Path]:
    """The ``iter_N`` checkpoint dirs of a training run, oldest first (``iter_N.tmp`` dirs of
    an unfinished write are not checkpoints)."""
    return sorted((p for p in Path(run_dir).glob("iter_*")
                   if p.is_dir() and p.name[5:].isdigit()),
                  key=lambda p: int(p.name[5:]))


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    paddle.seed(seed)
