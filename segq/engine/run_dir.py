"""One run per run directory: a new run never mixes its checkpoints with another's.

A training run owns ``save_dir``: it writes ``config.yml``, ``iter_N/``, ``best_model/`` and
``vdl/`` there and prunes old ``iter_N`` by number. A second run in the same directory
would rotate the first run's checkpoints with its own and leave the first run's
``best_model`` looking current, so a fresh run needs an empty directory; continuing is
``--resume_model`` from a checkpoint of that directory, replacing is ``--overwrite``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..checkpoint import iteration_checkpoints

# what a training run writes into its save_dir (``.tmp``/``.old``: an atomic write under way)
RUN_ENTRIES = ("config.yml", "best_model", "vdl")


class RunDirError(ValueError):
    """A run directory that another run already uses."""


def _is_run_entry(path: Path) -> bool:
    name = path.name
    for suffix in (".tmp", ".old"):
        name = name.removesuffix(suffix)
    return name in RUN_ENTRIES or (name.startswith("iter_") and name[5:].isdigit())


def _listing(entries: list[Path], limit: int = 4) -> str:
    names = sorted(p.name for p in entries)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                       else "")


def _iteration_of(checkpoint: Path) -> int | None:
    name = checkpoint.name
    return int(name[5:]) if name.startswith("iter_") and name[5:].isdigit() else None


def check_run_dir(save_dir: str | Path, resume_model: str | None = None,
                  overwrite: bool = False) -> None:
    """Raise :class:`RunDirError` unless a run may write into ``save_dir``; writes nothing.

    Allowed: an empty or missing directory; ``overwrite`` (the old run's entries are removed
    by :func:`clear_run_dir` once everything else has been validated); resuming from a
    checkpoint inside ``save_dir`` that no newer ``iter_N`` there has superseded.
    """
    save_dir = Path(save_dir)
    entries = list(save_dir.iterdir()) if save_dir.is_dir() else []
    if save_dir.exists() and not save_dir.is_dir():
        raise RunDirError(f"--save_dir {save_dir} is a file, not a directory")
    if not entries:
        return
    if resume_model:
        ckpt = Path(resume_model).resolve()
        if ckpt.parent == save_dir.resolve():
            it = _iteration_of(ckpt)
            newer = [p for p in iteration_checkpoints(save_dir)
                     if it is not None and _iteration_of(p) > it]
            if newer:
                raise RunDirError(
                    f"--save_dir {save_dir} holds {_listing(newer)}, newer than the checkpoint "
                    f"{ckpt.name} being resumed: resuming would rotate them with the new ones; "
                    f"resume from {newer[-1]} or give a new --save_dir")
            return
        raise RunDirError(
            f"--save_dir {save_dir} already holds another run ({_listing(entries)}) and "
            f"--resume_model {resume_model} is not one of its checkpoints: give an empty "
            f"--save_dir")
    if overwrite:
        return
    latest = iteration_checkpoints(save_dir)
    hint = f"--resume_model {latest[-1]} to continue it, " if latest else ""
    raise RunDirError(
        f"--save_dir {save_dir} is not empty ({_listing(entries)}): give a new --save_dir, "
        f"{hint}or --overwrite to replace that run")


def clear_run_dir(save_dir: str | Path) -> list[str]:
    """Remove what a previous run wrote into ``save_dir`` (for ``--overwrite``); other files
    stay. Returns the names removed."""
    removed = []
    for entry in sorted(Path(save_dir).iterdir()) if Path(save_dir).is_dir() else []:
        if not _is_run_entry(entry):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed
