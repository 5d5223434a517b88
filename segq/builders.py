"""Config sections -> objects. Constructors never load weights; builders do, strictly.

The model a job runs is built here and only here: FP32 (``build_model_for``) or quantized
(``build_qat_model``: FP32 weights in, fake quant inserted from ``cfg.quant``, QAT weights
in), so the order cannot drift between training, evaluation and export, and the training
engine only runs the loop over whatever it is given.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paddle

if TYPE_CHECKING:
    from .quant.paddleslim_adapter import QATModel

from . import components  # noqa: F401  (fills the registries the builders read)
from .checkpoint import load_weights
from .config import Component, LossConfig, QuantConfig, SegConfig
from .registry import BACKBONES, DATASETS, LOSSES, LR_SCHEDULERS, MODELS, OPTIMIZERS

logger = logging.getLogger("segq")

PRETRAINED_CACHE = Path.home() / ".cache" / "segq" / "pretrained"


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def resolve_pretrained(path_or_url: str, cache_dir: Path = PRETRAINED_CACHE) -> Path:
    """A local ``.pdparams`` file, or an https URL downloaded once into ``cache_dir`` (fails
    clearly offline). PaddleSeg publishes its weights as ``.tar.gz`` archives holding one
    ``model.pdparams``; those are unpacked and that file is returned.

    Weights from outside are untrusted: only https URLs are fetched, ``url#sha256=<hex>``
    (or ``download.KNOWN_SHA256``) is checked on the downloaded bytes before they are
    unpacked, and the ``.pdparams`` is later read without unpickling arbitrary objects."""
    if "://" in path_or_url:
        from .data.download import (check_weights_url, download_and_extract, download_file,
                                    split_sha256)
        url, sha256 = split_sha256(path_or_url)
        check_weights_url(url)
        if not url.endswith(ARCHIVE_SUFFIXES):
            return download_file(url, cache_dir, sha256=sha256)
        name = url.rstrip("/").rsplit("/", 1)[-1]
        for suffix in ARCHIVE_SUFFIXES:
            name = name.removesuffix(suffix)
        folder = download_and_extract(url, cache_dir / name, sha256=sha256)
        found = sorted(folder.rglob("*.pdparams"))
        if len(found) != 1:
            raise FileNotFoundError(f"{url} unpacked into {folder} holds "
                                    f"{len(found)} .pdparams files; expected exactly one")
        return found[0]
    path = Path(path_or_url).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    return path


def num_classes_of(cfg: SegConfig) -> int:
    """The class count: the model's own setting, else the dataset's."""
    if "num_classes" in cfg.model.kwargs():
        return int(cfg.model.kwargs()["num_classes"])
    for section in (cfg.train_dataset, cfg.val_dataset):
        if section is None:
            continue
        if "num_classes" in section.kwargs():
            return int(section.kwargs()["num_classes"])
        fixed = getattr(DATASETS.get(section.type), "NUM_CLASSES", None)
        if fixed is not None:
            return int(fixed)
    raise ValueError("cannot tell the number of classes: set model.num_classes "
                     "or a dataset's num_classes")


def _build_backbone(spec: Any):
    if not isinstance(spec, dict):
        return spec
    spec = dict(spec)
    pretrained = spec.pop("pretrained", None)
    backbone = BACKBONES.build(spec)
    if pretrained:
        report = load_weights(backbone, resolve_pretrained(pretrained), strict=True)
        logger.info(f"loaded backbone weights from {pretrained} ({report})")
    return backbone


def build_model(model_cfg: Component, num_classes: int) -> paddle.nn.Layer:
    spec = model_cfg.to_dict()
    pretrained = spec.pop("pretrained", None)
    if "backbone" in spec:
        spec["backbone"] = _build_backbone(spec["backbone"])
    if spec.get("num_classes", num_classes) != num_classes:
        raise ValueError(f"model.num_classes is {spec['num_classes']} but the dataset has "
                         f"{num_classes} classes")
    model = MODELS.build(spec, num_classes=num_classes)
    if pretrained:
        load_weights(model, resolve_pretrained(pretrained), strict=True)
        logger.info(f"loaded model weights from {pretrained}")
    return model


def build_model_for(cfg: SegConfig, weights: str | None = None) -> paddle.nn.Layer:
    """Build the config's model and, if given, load ``weights`` strictly."""
    model = build_model(cfg.model, num_classes_of(cfg))
    if weights:
        load_weights(model, weights, strict=True)
    return model


def quant_config_of(cfg: SegConfig) -> QuantConfig:
    """The config's ``quant:`` section, or the defaults when it has none."""
    return cfg.quant if cfg.quant is not None else QuantConfig()


def build_qat_model(cfg: SegConfig, fp32_weights: str | None = None,
                    qat_weights: str | None = None) -> QATModel:
    """Build the config's model, load ``fp32_weights`` (before fake quant), insert fake
    quant from ``cfg.quant``, then load ``qat_weights`` (a QAT checkpoint); both loads are
    strict."""
    from .quant.paddleslim_adapter import prepare_qat

    qat = prepare_qat(build_model_for(cfg, fp32_weights), quant_config_of(cfg))
    if qat_weights:
        load_weights(qat.model, qat_weights, strict=True)
    logger.info(f"fake quant inserted; {len(qat.skipped)} sublayers kept in float"
                + (f": {', '.join(qat.skipped[:8])}{' ...' if len(qat.skipped) > 8 else ''}"
                   if qat.skipped else ""))
    return qat


def build_train_model(cfg: SegConfig, weights: str | None, quantize: bool) -> paddle.nn.Layer:
    """The model a training run updates: the config's, from ``weights``; with ``quantize``
    the fake-quant model of :func:`build_qat_model` (``weights`` are then the FP32 ones)."""
    if quantize:
        return build_qat_model(cfg, fp32_weights=weights).model
    return build_model_for(cfg, weights)


def build_train_loss(cfg: SegConfig, quantize: bool, teacher_weights: str | None = None):
    """The config's loss; a quantized run with ``quant.distill`` adds distillation from the
    FP32 model in ``teacher_weights``."""
    loss = MultiOutputLoss(cfg.loss)
    distill = quant_config_of(cfg).distill if quantize else None
    if distill is None:
        return loss
    if not teacher_weights:
        raise ValueError("quant.distill: the FP32 teacher's weights come from --model_path; "
                         "give it also when resuming with --resume_model")
    from .quant.distill import DistillationLoss

    return DistillationLoss(loss, build_model_for(cfg, teacher_weights), distill)


def build_dataset(section: Component | None, name: str = "dataset"):
    if section is None:
        raise ValueError(f"the config has no {name} section")
    return DATASETS.build(section.to_dict())


class MultiOutputLoss:
    """Weighted sum of one loss per model output: ``sum_i coef[i] * loss_i(logits[i], label)``."""

    def __init__(self, loss_cfg: LossConfig):
        losses = [LOSSES.build(t.to_dict()) for t in loss_cfg.types]
        self.coef = list(loss_cfg.coef)
        self.losses = losses if len(losses) == len(self.coef) else losses * len(self.coef)

    def __call__(self, logits: list[paddle.Tensor], label: paddle.Tensor,
                 img: paddle.Tensor | None = None):
        """(the input batch ``img`` is unused here; distillation losses need it)"""
        if len(logits) != len(self.coef):
            raise ValueError(f"the model returned {len(logits)} outputs but loss.coef has "
                             f"{len(self.coef)} entries: give one coefficient per output")
        terms = [c * fn(x, label) for c, fn, x in zip(self.coef, self.losses, logits)]
        return paddle.add_n(terms), [float(t) for t in terms]


def build_lr_scheduler(section: Component, iters: int):
    return LR_SCHEDULERS.build(section.to_dict(), decay_steps=iters)


def build_optimizer(section: Component, model: paddle.nn.Layer, lr_scheduler):
    return OPTIMIZERS.build(section.to_dict(), parameters=model.parameters(),
                            learning_rate=lr_scheduler)
