"""Checkpoints: strict weight loading with a clear report, atomic saving, exact resume.

A checkpoint is a directory holding ``model.pdparams``, ``model.pdopt`` (optimizer state,
including the lr schedule) and ``state.json`` (iteration, best mIoU, RNG state). It is
written to ``<dir>.tmp`` and renamed into place, so a crash never leaves a half-written
checkpoint or best model behind.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paddle


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or does not fit the model."""


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
    state = paddle.load(str(file))
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
        lines = [f"{kind} ({len(keys)}): {', '.join(keys[:10])}{' ...' if len(keys) > 10 else ''}"
                 for kind, keys in report.items() if keys]
        raise CheckpointError(f"weights in {file} do not match {type(model).__name__}:\n  "
                              + "\n  ".join(lines))
    usable = {k: v for k, v in state.items()
              if k in own and list(v.shape) == list(own[k].shape)}
    model.set_state_dict(usable)
    return report


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
    for name in ("model.pdparams", "state.json") + (("model.pdopt",) if optimizer else ()):
        if not (path / name).is_file():
            raise CheckpointError(f"cannot resume from {path}: {name} is missing "
                                  f"(expected a checkpoint dir written by training)")
    load_weights(model, path, strict=True)
    if optimizer is not None:
        state = paddle.load(str(path / "model.pdopt"))
        optimizer.set_state_dict(_optimizer_state_from_structured(state, model))
    if (path / "rng.pdstate").is_file():
        paddle.set_rng_state(paddle.load(str(path / "rng.pdstate"))["paddle_rng"])
    with open(path / "state.json", encoding="utf-8") as f:
        raw = json.load(f)
    return TrainState(**raw)


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
