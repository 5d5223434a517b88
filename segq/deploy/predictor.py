"""Predict label maps with an exported model: deploy.yaml's transforms -> a backend -> class
ids mapped back to each image's original size."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from ..data.transforms import build_transforms, transform_image
from .backend import Backend, create_backend
from .deploy_file import DeployInfo, is_weight_only, load_deploy_info, require_quantized_export
from .masks import Prediction
from .options import PredictorOptions
from .postprocess import label_map

T = TypeVar("T")


def same_shape_batches(items: Iterable[T], shape_of: Callable[[T], Hashable],
                       batch_size: int) -> Iterator[list[T]]:
    """Consecutive ``items`` in order, in batches of at most ``batch_size`` whose
    ``shape_of`` agree (images of different sizes cannot be stacked, and padding them would
    change the border pixels' predictions).

    A full batch is yielded before the next item is asked for, and if ``items`` raises, the
    batch gathered so far is yielded before the error goes on: an unreadable image stops a
    run only after the images before it have been predicted."""
    batch: list[T] = []
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            break
        except Exception:
            if batch:
                yield batch
            raise
        if batch and shape_of(item) != shape_of(batch[0]):
            yield batch
            batch = []
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_precision(deploy: DeployInfo, options: PredictorOptions) -> None:
    """precision 'int8' runs the INT8 ops of a quantized export; on an FP32 one it would
    run FP32 under an INT8 label, so it is refused (on every backend). A weight-only export
    runs in float: int8 is refused on it too, and so are the ONNX backends (it has no ONNX
    model: segq.deploy.onnx_export refuses to write one)."""
    weight_only = is_weight_only(deploy.quant)
    if options.precision == "int8" and not deploy.is_int8:
        require_quantized_export(deploy.model_dir, "precision 'int8'", "precision 'fp32'")
    if weight_only and options.backend != "paddle":
        raise ValueError(f"{deploy.deploy_file} is a weight-only export (INT8 weights, "
                         f"float inference), which runs on backend 'paddle' only: the ONNX "
                         f"path (backend {options.backend!r}) takes the FP32 or an INT8 "
                         f"export")


class Predictor:
    """Run an exported model on images.

    Args:
        model: an export directory or its ``deploy.yaml``.
        options: device, precision, threads, batch size (see :class:`PredictorOptions`).
        backend: anything with ``run(batch) -> output``; default: the engine ``options``
            ask for (:func:`segq.deploy.backend.create_backend`).
    """

    def __init__(self, model: str | os.PathLike,
                 options: PredictorOptions = PredictorOptions(),
                 backend: Backend | None = None):
        self.deploy = load_deploy_info(model)
        self.options = options
        check_precision(self.deploy, options)
        fixed_n = (self.deploy.input_shape or [-1])[0]
        if fixed_n != -1 and options.batch_size > fixed_n:
            raise ValueError(f"batch_size {options.batch_size} exceeds the fixed batch "
                             f"dimension {fixed_n} of {self.deploy.deploy_file} "
                             f"(Deploy.input_shape {self.deploy.input_shape})")
        self.transforms = build_transforms(self.deploy.transforms)
        self.backend = create_backend(self.deploy, options) if backend is None else backend

    def preprocess(self, image: np.ndarray, path: str | os.PathLike | None = None) -> dict:
        """deploy.yaml's transforms on an HxWx3 uint8 RGB image -> sample with CHW float32
        ``img`` and ``trans_info``."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {path or ''} must be HxWx3 RGB, got shape {image.shape}")
        return transform_image(self.transforms, image, os.fspath(path or ""))

    def _check_batch(self, batch: np.ndarray, samples: list[dict]) -> None:
        expected = self.deploy.input_shape
        if expected is None:
            return
        for got, want, name in zip(batch.shape, expected, "NCHW"):
            if want != -1 and got != want:
                raise ValueError(
                    f"{samples[0]['img_path'] or 'image'}: preprocessed batch has shape "
                    f"{list(batch.shape)} but {self.deploy.deploy_file} fixes {name}={want} "
                    f"(Deploy.input_shape {expected}); add a Resize to Deploy.transforms or "
                    f"export with a dynamic input shape")

    def _run(self, samples: list[dict]) -> list[np.ndarray]:
        batch = np.stack([s["img"] for s in samples])
        self._check_batch(batch, samples)
        out = np.asarray(self.backend.run(batch))
        want_ndim = {"argmax": 3, "softmax": 4, "none": 4}.get(self.deploy.output_op)
        if out.shape[:1] != (len(samples),) or out.ndim not in (3, 4) or (
                want_ndim is not None and out.ndim != want_ndim):
            raise ValueError(f"the model in {self.deploy.model_dir} returned shape "
                             f"{list(out.shape)} for a batch of {len(samples)}; expected "
                             f"[N, H, W] or [N, C, H, W] (Deploy.output_op "
                             f"{self.deploy.output_op!r})")
        return [label_map(o, s["trans_info"]) for o, s in zip(out, samples)]

    def _predict(self, items: Iterable[tuple[Path | None, np.ndarray]]) -> Iterator[Prediction]:
        prepared = ((path, image, self.preprocess(image, path)) for path, image in items)
        for group in same_shape_batches(prepared, lambda item: item[2]["img"].shape,
                                        self.options.batch_size):
            maps = self._run([sample for _, _, sample in group])
            for (path, image, _), pred in zip(group, maps):
                yield Prediction(path, image, pred)

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """HxWx3 uint8 RGB images -> their HxW int32 label maps."""
        return [p.label_map for p in self._predict((None, image) for image in images)]

    def predict_files(self, paths: Iterable[str | os.PathLike],
                      skipped: list[tuple[Path, str]] | None = None) -> Iterator[Prediction]:
        """Read, predict and yield one :class:`Prediction` per image file, in order, holding
        at most one batch of images in memory. An unreadable file raises
        ``segq.deploy.images.BadImageError``; given a ``skipped`` list, it is recorded there
        as ``(path, reason)`` instead and left out."""
        from .images import read_images  # images.py builds on this module

        return self._predict(read_images(paths, skipped))
