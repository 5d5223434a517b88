"""QAT as it reads: prepare (FP32 weights in, fake quant inserted) -> fine-tune -> evaluate.

``qat_model_for`` is the one function that builds a quantized model, so the order
(build -> load FP32 strictly -> insert fake quant -> load a QAT checkpoint strictly) cannot
drift between training, evaluation and export.
"""
from __future__ import annotations

import dataclasses
import logging

from ..checkpoint import load_weights
from ..config import QuantConfig, SegConfig
from ..engine.workflows import TrainOptions, build_model_for, evaluate_model, train
from ..metrics import EvalResult
from .paddleslim_adapter import QATModel, prepare_qat

logger = logging.getLogger("segq")


def quant_config_of(cfg: SegConfig) -> QuantConfig:
    return cfg.quant if cfg.quant is not None else QuantConfig()


def qat_model_for(cfg: SegConfig, fp32_weights: str | None = None,
                  qat_weights: str | None = None) -> QATModel:
    """Build the config's model, load ``fp32_weights`` (before fake quant), insert fake
    quant, then load ``qat_weights`` (a QAT checkpoint); both loads are strict."""
    model = build_model_for(cfg, fp32_weights)
    qat = prepare_qat(model, quant_config_of(cfg))
    if qat_weights:
        load_weights(qat.model, qat_weights, strict=True)
    logger.info(f"fake quant inserted; {len(qat.skipped)} sublayers kept in float"
                + (f": {', '.join(qat.skipped[:8])}{' ...' if len(qat.skipped) > 8 else ''}"
                   if qat.skipped else ""))
    return qat


def qat_train(cfg: SegConfig, opts: TrainOptions):
    """Fine-tune with fake quant from the FP32 weights in ``opts.model_path``
    (``opts.resume_model`` continues a QAT run instead)."""
    if not opts.model_path and not opts.resume_model:
        raise ValueError("QAT fine-tunes a trained FP32 model: give --model_path "
                         "(or --resume_model to continue a QAT run)")
    qat = qat_model_for(cfg, fp32_weights=opts.model_path)
    return train(cfg, dataclasses.replace(opts, model_path=None), model=qat.model)


def qat_evaluate(cfg: SegConfig, qat_weights: str, num_workers: int = 0,
                 result_json: str | None = None) -> EvalResult:
    return evaluate_model(cfg, qat_model_for(cfg, qat_weights=qat_weights).model, num_workers,
                          result_json)
