"""Predict label maps with an exported model: deploy.yaml's transforms -> a backend -> class
ids mapped back to each image's original size."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, NamedTuple, Sequence, TypeVar

import numpy as np

from ..data.io import read_image
from ..data.transforms import build_transforms, transform_image
from .backend import Backend, create_backend
from .deploy_file import DeployInfo, load_deploy_info
from .options import PredictorOptions
from .postprocess import label_map

T = TypeVar("T")


class Prediction(NamedTuple):
    path: Path | None       # the image file, None for an in-memory image
    image: np.ndarray       # HxWx3 uint8 RGB as given
    label_map: np.ndarray   # HxW int32 class ids at the image's size


def same_shape_batches(items: Iterable[T], shape_of: Callable[[T], Hashable],
                       batch_size: int) -> Iterator[list[T]]:
    """Consecutive ``items`` in order, in batches of at most ``batch_size`` whose
    ``shape_of`` agree (images of different sizes cannot be stacked, and padding them would
    change the border pixels' predictions)."""
    batch: list[T] = []
    for item in items:
        if batch and (len(batch) == batch_size or shape_of(item) != shape_of(batch[0])):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def check_precision(deploy: DeployInfo, options: PredictorOptions) -> None:
    if options.precision == "int8" and not deploy.is_quantized:
        raise ValueError(f"precision 'int8' runs the INT8 ops of a quantized export, but "
                         f"{deploy.deploy_file} has no 'Quant:' section (an FP32 export): "
                         f"export a QAT model with slim/qat_export.py, or use precision "
                         f"'fp32'")


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

    def predict_files(self, paths: Iterable[str | os.PathLike]) -> Iterator[Prediction]:
        """Read, predict and yield one :class:`Prediction` per image file, in order, holding
        at most one batch of images in memory."""
        return self._predict((Path(p), read_image(p)) for p in paths)
