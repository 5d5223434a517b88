"""Component registries: one per kind, keyed by class name, refusing duplicates.

A config section such as ``{type: BiSeNetV2, align_corners: false}`` is turned into an
object by :meth:`Registry.build`, which checks the keyword arguments against the
constructor's signature before calling it, so a typo fails with the key's name instead
of deep inside ``__init__``.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Iterator


class RegistryError(KeyError):
    """An unknown, duplicate or mis-configured component."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, obj: Callable[..., Any] | None = None, *, name: str | None = None):
        """Register ``obj`` under its ``__name__`` (or ``name``); usable as a decorator."""

        def _add(target: Callable[..., Any]) -> Callable[..., Any]:
            key = name or target.__name__
            if key in self._items:
                raise RegistryError(
                    f"{self.kind} '{key}' is already registered "
                    f"(by {self._items[key].__module__}); names must be unique")
            self._items[key] = target
            return target

        return _add(obj) if obj is not None else _add

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, key: str) -> Callable[..., Any]:
        if key not in self._items:
            close = difflib.get_close_matches(str(key), self._items, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} type '{key}'{hint} "
                f"(registered: {', '.join(self.names()) or 'none'})")
        return self._items[key]

    def check_kwargs(self, key: str, kwargs: dict[str, Any]) -> list[str]:
        """Return the problems calling ``key(**kwargs)`` would have (unknown or missing args)."""
        target = self.get(key)
        sig = inspect.signature(target)
        params = sig.parameters
        problems = []
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            accepted = [n for n, p in params.items()
                        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            for arg in kwargs:
                if arg not in params:
                    close = difflib.get_close_matches(arg, accepted, n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    problems.append(f"{self.kind} {key} has no argument '{arg}'{hint}; "
                                    f"accepted: {', '.join(accepted)}")
        for arg, value in kwargs.items():
            expected = _NUMBER_ANNOTATIONS.get(params[arg].annotation) if arg in params else None
            if expected is not None and (isinstance(value, bool)
                                         or not isinstance(value, expected[0])):
                problems.append(f"{self.kind} {key} argument '{arg}' expects {expected[1]}, "
                                f"got {value!r} ({type(value).__name__})")
        for n, p in params.items():
            if (p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and n not in kwargs and n != "self"):
                problems.append(f"{self.kind} {key} needs argument '{n}'")
        return problems

    def build(self, cfg: dict[str, Any], **defaults: Any) -> Any:
        """Build ``cfg['type'](**rest)``; ``defaults`` fill arguments the constructor accepts
        and ``cfg`` does not set (e.g. ``num_classes`` from the dataset)."""
        cfg = dict(cfg)
        if "type" not in cfg:
            raise RegistryError(f"{self.kind} config needs a 'type' key, got keys {sorted(cfg)}")
        key = cfg.pop("type")
        target = self.get(key)
        params = inspect.signature(target).parameters
        for k, v in defaults.items():
            if k in params and k not in cfg:
                cfg[k] = v
        problems = self.check_kwargs(key, cfg)
        if problems:
            raise RegistryError("; ".join(problems))
        return target(**cfg)


# Parameters annotated as plain numbers get their config values checked (a quoted "1e-5"
# reaching Paddle's optimizer fails deep inside it); annotations may be strings under
# ``from __future__ import annotations``.
_NUMBER_ANNOTATIONS = {float: ((int, float), "a number"), "float": ((int, float), "a number"),
                       int: ((int,), "an integer"), "int": ((int,), "an integer")}


MODELS = Registry("model")
BACKBONES = Registry("backbone")
LOSSES = Registry("loss")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
OPTIMIZERS = Registry("optimizer")
LR_SCHEDULERS = Registry("lr_scheduler")
