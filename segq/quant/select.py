"""Which sublayers stay in float: glob patterns over the model's own sublayer names."""
from __future__ import annotations

import difflib
from fnmatch import fnmatchcase

import paddle


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def select_skipped(model: paddle.nn.Layer, patterns: list[str]) -> list[str]:
    """Names of the sublayers matched by ``patterns`` (or lying below a matched one).

    A pattern that matches no sublayer is an error naming the closest names, so a typo
    cannot silently leave a layer quantized."""
    names = [name for name, _ in model.named_sublayers()]
    for pattern in patterns:
        if not any(fnmatchcase(n, pattern) for n in names):
            close = difflib.get_close_matches(pattern, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"quant.skip_layers pattern '{pattern}' matches no sublayer of "
                             f"{type(model).__name__}{hint}")
    return [n for n in names
            if any(fnmatchcase(a, p) for a in _ancestors(n) for p in patterns)]
