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


def _train_crop(cfg: SegConfig) -> tuple[int, int] | None:
    """The (w, h) crop of the first train transform that has a ``crop_size``, if any."""
    section = cfg.train_dataset.to_dict() if cfg.train_dataset is not None else {}
    for t in section.get("transforms") or []:
        size = t.get("crop_size") if isinstance(t, dict) else None
        if size is not None:
            return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return None


def recipe_warnings(cfg: SegConfig) -> list[str]:
    """Settings that load and train but cannot train what they mean; logged by ``train``.

    An atrous (ASPP) branch with rate r, on a feature map at most r pixels wide, only ever
    reads padding with its outer taps: on train crops those weights get no gradient, and at
    full-frame evaluation, where the map is larger, they read real features through
    untrained weights (the DeepLabV3+ R18 case in docs/design-notes.md)."""
    model = cfg.model.to_dict()
    rates = model.get("aspp_ratios")
    backbone = model.get("backbone")
    stride = backbone.get("output_stride") if isinstance(backbone, dict) else None
    crop = _train_crop(cfg)
    if not rates or not stride or crop is None:
        return []
    side = -(-min(crop) // int(stride))  # ceil: the train feature map's shorter side
    bad = [r for r in rates if r > 1 and r >= side]
    if not bad:
        return []
    return [f"model.aspp_ratios: rate(s) {bad} are >= the {side}-pixel side of the feature "
            f"map of the {crop[0]}x{crop[1]} train crops at output stride {stride}: those "
            f"branches' outer taps only read padding in training and untrained weights on "
            f"larger eval frames; use rates below {side}"]


def _dataset_classes(section) -> int | None:
    """A dataset section's class count: its ``num_classes``, else its type's fixed count."""
    if section is None:
        return None
    if "num_classes" in section.kwargs():
        return section.kwargs()["num_classes"]
    return getattr(DATASETS.get(section.type), "NUM_CLASSES", None)


def _loss_weights(comp: dict[str, Any], path: str):
    """``(path, weight)`` of every loss in ``comp`` (and its nested ``losses``) with weights."""
    if isinstance(comp.get("weight"), list):
        yield f"{path}.weight", comp["weight"]
    for i, sub in enumerate(comp.get("losses") or []):
        if isinstance(sub, dict):
            yield from _loss_weights(sub, f"{path}.losses.{i}")


def check_class_counts(cfg: SegConfig) -> list[str]:
    """The model, both datasets and every class-weight list must agree on the class count.

    A mismatch otherwise surfaces at the first training step as an index error inside
    Paddle, or not at all (a val set with other classes than the train set, when training
    runs without evaluation)."""
    counts = {name: _dataset_classes(getattr(cfg, name))
              for name in ("train_dataset", "val_dataset")}
    counts = {f"{name}.num_classes": n for name, n in counts.items() if n is not None}
    if "num_classes" in cfg.model.kwargs():
        counts = {"model.num_classes": cfg.model.kwargs()["num_classes"], **counts}
    problems = []
    if len(set(counts.values())) > 1:
        problems.append("class counts disagree: " + ", ".join(
            f"{k}={v}" for k, v in counts.items()) + "; set them to the same value")
    n = next(iter(counts.values()), None)
    if n is not None:
        for i, loss in enumerate(cfg.loss.types):
            for path, weight in _loss_weights(loss.to_dict(), f"loss.types.{i}"):
                if len(weight) != n:
                    problems.append(f"{path}: {len(weight)} class weights for {n} classes "
                                    f"(is it inherited from a _base_ for another dataset?)")
    return problems
