"""YAML loading with ``_base_`` inheritance and ``--opts`` overrides.

Rules (PaddleSeg's, made explicit):
- ``_base_`` is a path or a list of paths, relative to the file that names it; bases are
  merged in order, then the file itself on top.
- Dicts are deep-merged; lists and scalars are replaced whole. A dict holding
  ``_delete_: true`` replaces the inherited dict instead of merging into it (mmengine's rule).
- Loading is ``yaml.safe_load``'s loader: a config never executes code. Its one change
  reads ``1e-5`` as a float (YAML 1.2), where PyYAML's YAML 1.1 rules need a dot
  (``1.0e-5``) and would give the string "1e-5".
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that cannot be loaded or does not validate; the message names file and key."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads exponent floats without a dot (``1e-5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text) -> Any:
    """``yaml.safe_load`` with exponent floats read as floats (see :class:`_Loader`)."""
    return yaml.load(text, Loader=_Loader)


def _read_yaml(path: Path, referrer: Path | None = None) -> dict[str, Any]:
    if not path.is_file():
        where = f" (named in _base_ of {referrer})" if referrer is not None else ""
        raise ConfigError(f"config file not found: {path}{where}")
    try:
        with open(path, encoding="utf-8") as f:
            data = parse_yaml(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``: dicts merge recursively, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict):
            value = dict(value)
            if value.pop("_delete_", False) or not isinstance(out.get(key), dict):
                out[key] = _strip_delete(value)
            else:
                out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _strip_delete(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _strip_delete(v) if isinstance(v, dict) else v
            for k, v in d.items() if k != "_delete_"}


def load_yaml_with_bases(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and everything its ``_base_`` names, merged, with ``_base_`` removed."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"_base_ cycle: {cycle}")
    data = _read_yaml(path, _chain[-1] if _chain else None)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, load_yaml_with_bases(path.parent / base, (*_chain, path)))
    return deep_merge(merged, data)


def apply_opts(cfg: dict[str, Any], opts: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides; values are parsed as YAML scalars/lists
    (``lr=0.01`` -> float, ``crop=[256,256]`` -> list). List indices are allowed
    (``train_dataset.transforms.0.min_scale_factor=0.5``)."""
    cfg = copy.deepcopy(cfg)
    for opt in opts or []:
        if "=" not in opt:
            raise ConfigError(f"--opts entry '{opt}' must look like key.path=value")
        dotted, raw = opt.split("=", 1)
        try:
            value = parse_yaml(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--opts {dotted}: cannot parse value {raw!r}: {e}") from e
        keys = dotted.split(".")
        node: Any = cfg
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            where = ".".join(keys[: i + 1])
            if isinstance(node, list):
                if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
                    raise ConfigError(f"--opts {dotted}: '{where}' needs a list index in "
                                      f"[0, {len(node)}), got '{key}'")
                key = int(key)
            elif not isinstance(node, dict):
                raise ConfigError(f"--opts {dotted}: '{'.'.join(keys[:i])}' is a "
                                  f"{type(node).__name__}, not a mapping or list")
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and key not in node:
                    node[key] = {}
                node = node[key]
    return cfg
