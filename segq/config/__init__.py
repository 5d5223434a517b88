"""Config loading: YAML + ``_base_`` + ``--opts`` -> validated :class:`SegConfig`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .loader import ConfigError, apply_opts, deep_merge, load_yaml_with_bases
from .quant import DistillConfig, QuantConfig
from .schema import Component, LossConfig, SegConfig, TestConfig
from .validate import check_class_counts, check_components

__all__ = ["ConfigError", "Component", "DistillConfig", "LossConfig", "QuantConfig", "SegConfig", "TestConfig",
           "load_config", "validate_config", "dump_config", "deep_merge", "apply_opts",
           "load_yaml_with_bases"]


def _format_pydantic(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<top level>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not part of the config schema)"
        lines.append(f"{where}: {msg} (got {e.get('input')!r})")
    return lines


def validate_config(data: dict[str, Any], source: str = "<config>") -> SegConfig:
    """Validate a merged config dict; raise :class:`ConfigError` listing every problem."""
    _register_components()
    try:
        cfg = SegConfig.model_validate(data)
    except ValidationError as e:
        problems = _format_pydantic(e)
    else:
        problems = check_components(cfg)
        problems = problems or check_class_counts(cfg)
        if not problems:
            return cfg
    raise ConfigError(f"{source}: invalid config:\n  - " + "\n  - ".join(problems))


def load_config(path: str | Path, opts: list[str] | None = None) -> SegConfig:
    """Load ``path`` with its bases, apply ``--opts``, and validate."""
    data = apply_opts(load_yaml_with_bases(path), opts)
    return validate_config(data, source=str(path))


def dump_config(cfg: SegConfig, path: str | Path) -> None:
    """Write the resolved config (bases merged, overrides applied) as YAML."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), f, sort_keys=False)


def _register_components() -> None:
    # Importing the component packages fills the registries; done lazily so that
    # reading a config does not pay for importing paddle until it must validate.
    from .. import components  # noqa: F401
