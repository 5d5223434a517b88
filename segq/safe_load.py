"""Read Paddle weight files (``.pdparams``, ``.pdopt``, ``rng.pdstate``) without running code.

``paddle.load`` is ``pickle.load``: a crafted file runs any code it likes while it is read,
and weights come from outside (``--model_path``, ``--resume_model``, ``pretrained`` URLs).
What ``paddle.save`` writes (Paddle 3.3.1, pickle protocol 2-4; PaddleSeg's published
weights too) only needs: plain containers and scalars, numpy's own rebuild functions for
ndarrays, dtypes and scalars, ``(name, ndarray)`` tuples for tensors, and (``rng.pdstate``)
Paddle's ``GeneratorState``. The unpickler below resolves exactly those globals and refuses
every other one *before* it is called, so nothing outside that list can run.
:func:`load` then turns the arrays into tensors the way ``paddle.load`` does.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import os
import pickle
from typing import Any

import numpy as np
import numpy.core.multiarray as _multiarray
import numpy.core.numeric as _numeric


class UnsafeWeightsError(pickle.UnpicklingError):
    """A weights file that asks the unpickler for a global outside the allow-list."""


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # Protocol 2 pickles bytes as ``_codecs.encode(text, "latin1")``; nothing else needed.
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode only rebuilds latin1 bytes here, "
                                     f"not {encoding!r}")
    return codecs.encode(text, encoding, errors)


class _GeneratorStateRecord:
    """Stands in for ``paddle.base.libpaddle.GeneratorState`` while unpickling: it only keeps
    the pickled state, which :func:`_generator_state` checks before Paddle sees it."""

    def __setstate__(self, state):
        self.state = state


def _numpy_globals() -> dict[tuple[str, str], Any]:
    rebuild = {"_reconstruct": _multiarray._reconstruct, "scalar": _multiarray.scalar}
    found = {}
    # numpy 2 writes ``numpy._core``; the functions are the same as numpy 1.26's.
    for package in ("numpy.core", "numpy._core"):
        for name, fn in rebuild.items():
            found[(f"{package}.multiarray", name)] = fn
        found[(f"{package}.numeric", "_frombuffer")] = _numeric._frombuffer  # protocol 5
    found[("numpy", "ndarray")] = np.ndarray
    found[("numpy", "dtype")] = np.dtype
    return found


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **_numpy_globals(),
    # paddle.save's reducer for a tensor outside a state dict: ``tuple((name, ndarray))``
    **{("builtins", t.__name__): t
       for t in (tuple, list, dict, set, frozenset, bytes, bytearray)},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
    ("paddle.base.libpaddle", "GeneratorState"): _GeneratorStateRecord,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        # Python 2 names (``__builtin__``, ``copy_reg``) as the default find_class maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(f"{module}.{name}") from None


def _describe(path) -> str:
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else "<buffer>"


def unpickle(path: str | os.PathLike | io.BufferedIOBase) -> Any:
    """The raw pickled structure of ``path`` (ndarrays, no tensors), read safely.

    Raises :class:`UnsafeWeightsError` naming the file and the refused global, or
    ``pickle.UnpicklingError`` for a file that is not a (complete) pickle."""
    name = _describe(path)
    try:
        if isinstance(path, (str, os.PathLike)):
            with open(path, "rb") as f:
                return _RestrictedUnpickler(f, encoding="latin1").load()
        return _RestrictedUnpickler(path, encoding="latin1").load()
    except UnsafeWeightsError as e:
        raise UnsafeWeightsError(
            f"refusing to load {name}: it asks to run {e}, which a weights file never needs "
            f"(only arrays, numbers, strings and containers are allowed); it may have been "
            f"crafted to run code") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, RecursionError, UnicodeError) as e:
        # a truncated or foreign file, or allowed globals called with nonsense arguments
        raise pickle.UnpicklingError(
            f"cannot read {name}: not a Paddle weights file, or truncated "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


# ---------------------------------------------------------------- like paddle.load's result
NAME_TABLE = "StructuredToParameterName@@"
SLICED = "UnpackBigParamInfor@@"  # (sic) Paddle's key for >1 GB arrays cut into slices


def _check_array(arr: np.ndarray, where: str) -> np.ndarray:
    # an object array can hold anything the allow-list lets through; weights never do
    if arr.dtype.hasobject:
        raise pickle.UnpicklingError(f"{where}: holds an array of Python objects, "
                                     f"not numbers; not a weights file")
    return arr


def _tensor(arr: np.ndarray, name: str | None, where: str):
    import paddle

    t = paddle.to_tensor(_check_array(arr, where))
    if name:
        t.name = name
    return t


def _generator_state(record: _GeneratorStateRecord, where: str):
    from paddle.base.libpaddle import GeneratorState

    # Paddle 3.3.1 pickles it as (device, seed, offset, [bytes of the engine's text state])
    state = getattr(record, "state", None)
    ok = (type(state) is tuple and len(state) == 4
          and all(type(x) is int for x in state[:3]) and type(state[3]) is list
          and all(type(v) is int and 0 <= v < 256 for v in state[3]))
    if not ok:
        raise pickle.UnpicklingError(f"{where}: malformed random generator state")
    real = GeneratorState.__new__(GeneratorState)
    try:
        real.__setstate__(state)
    except (TypeError, ValueError, RuntimeError) as e:
        raise pickle.UnpicklingError(f"{where}: malformed random generator state ({e})") from None
    return real


def _join_slices(obj: dict, where: str) -> dict:
    """Undo paddle.save's cutting of >1 GB arrays (protocol 2/3) into ``key@@.i`` slices."""
    info = obj.pop(SLICED, None)
    if not isinstance(info, dict):
        return obj
    for key, spec in info.items():
        parts = [obj.pop(part) for part in spec["slices"]]
        obj[key] = np.concatenate([_check_array(p, where) for p in parts]).reshape(
            spec["OriginShape"])
    return obj


def _convert(obj: Any, where: str) -> Any:
    """ndarrays and ``(name, ndarray)`` tuples -> tensors, recursively; GeneratorState records
    -> real states. Everything else is a plain value already."""
    if isinstance(obj, _GeneratorStateRecord):
        return _generator_state(obj, where)
    if isinstance(obj, np.ndarray):
        return _tensor(obj, None, where)
    if type(obj) is tuple and len(obj) == 2 and isinstance(obj[0], str) \
            and isinstance(obj[1], np.ndarray):
        return _tensor(obj[1], obj[0], where)
    if isinstance(obj, dict):
        return type(obj)((k, _convert(v, where)) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return type(obj)(_convert(v, where) for v in obj)
    return obj


def load(path: str | os.PathLike) -> Any:
    """``paddle.load(path)`` for pickled Paddle files, without running code from the file.

    A state dict (``model.pdparams``, ``model.pdopt``) comes back as ``{key: Tensor}`` with
    Paddle's parameter names set, other values (the LR_Scheduler dict) as they were;
    ``rng.pdstate`` as ``{"paddle_rng": [GeneratorState]}``."""
    where = _describe(path)
    obj = unpickle(path)
    if isinstance(obj, dict):
        obj = _join_slices(obj, where)
        names = obj.pop(NAME_TABLE, None)
        if isinstance(names, dict):  # a state dict: its arrays are named parameters
            return {k: _tensor(v, names.get(k), where)
                    if isinstance(v, np.ndarray) and k in names else _convert(v, where)
                    for k, v in obj.items()}
    return _convert(obj, where)
