"""Check every component section of a validated config against its registry."""
from __future__ import annotations

from typing import Any

from ..registry import (BACKBONES, DATASETS, LOSSES, LR_SCHEDULERS, MODELS, OPTIMIZERS,
                        TRANSFORMS, Registry, RegistryError)
from .schema import SegConfig

# kwargs that hold nested components, and the registry each is built from
NESTED = {"backbone": BACKBONES, "transforms": TRANSFORMS, "losses": LOSSES}
# kwargs the builders supply, so a config need not set them
INJECTED = {
    "model": {"num_classes", "pretrained"},
    "backbone": {"pretrained"},
    "optimizer": {"parameters", "learning_rate"},
    "lr_scheduler": {"decay_steps"},
}


def check_component(registry: Registry, comp: dict[str, Any], path: str,
                    injected: set[str] = frozenset()) -> list[str]:
    """Return ``path: problem`` strings for ``comp`` and the components nested in it."""
    if not isinstance(comp, dict) or "type" not in comp:
        return [f"{path}: expected a mapping with a 'type' key, got {comp!r}"]
    kwargs = {k: v for k, v in comp.items() if k not in ("type", *injected)}
    try:
        problems = registry.check_kwargs(comp["type"], kwargs)
    except RegistryError as e:
        return [f"{path}.type: {e}"]
    problems = [f"{path}: {p}" for p in problems
                if not any(f"'{name}'" in p and "needs" in p for name in injected)]
    for key, sub_registry in NESTED.items():
        value = kwargs.get(key)
        sub_injected = INJECTED.get(key, set())
        if isinstance(value, dict):
            problems += check_component(sub_registry, value, f"{path}.{key}", sub_injected)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                problems += check_component(sub_registry, item, f"{path}.{key}.{i}", sub_injected)
    return problems


def check_components(cfg: SegConfig) -> list[str]:
    problems = check_component(MODELS, cfg.model.to_dict(), "model", INJECTED["model"])
    for name in ("train_dataset", "val_dataset"):
        section = getattr(cfg, name)
        if section is not None:
            problems += check_component(DATASETS, section.to_dict(), name)
    for i, loss in enumerate(cfg.loss.types):
        problems += check_component(LOSSES, loss.to_dict(), f"loss.types.{i}")
    problems += check_component(OPTIMIZERS, cfg.optimizer.to_dict(), "optimizer",
                                INJECTED["optimizer"])
    problems += check_component(LR_SCHEDULERS, cfg.lr_scheduler.to_dict(), "lr_scheduler",
                                INJECTED["lr_scheduler"])
    for i, t in enumerate(cfg.export.transforms or []):
        problems += check_component(TRANSFORMS, t.to_dict(), f"export.transforms.{i}")
    return problems
