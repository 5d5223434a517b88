"""QAT as it reads: prepare (FP32 weights in, fake quant inserted) -> fine-tune -> evaluate
-> export (INT8 inference model).

``qat_model_for`` is the one function that builds a quantized model, so the order
(build -> load FP32 strictly -> insert fake quant -> load a QAT checkpoint strictly) cannot
drift between training, evaluation and export.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

from ..checkpoint import load_weights
from ..config import QuantConfig, SegConfig
from ..engine.workflows import (TrainOptions, build_model_for, evaluate_model, export_model,
                                train)
from ..metrics import EvalResult
from .distill import DistillationLoss
from .paddleslim_adapter import QATModel, export_twin, prepare_qat, save_quantized

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


def observe_activation_ranges(qat: QATModel, batches) -> None:
    """Let the activation quantizers of ``qat`` see ``batches`` (tensors), leaving the weights
    and the BatchNorm statistics as they are; the model ends in eval mode.

    The moving-average observers only update in train mode, while BatchNorm in train mode
    would re-estimate its statistics from these batches, so BatchNorm layers stay in eval
    mode (scales and statistics then agree, as after fine-tuning). Used to give a model that
    did not go through QAT (random weights, for speed measurements and tests) usable scales."""
    import paddle

    from ..models.layers import batch_norm_layers

    qat.model.train()
    for layer in batch_norm_layers(qat.model):
        layer.eval()
    with paddle.no_grad():
        for batch in batches:
            qat.model(batch)
    qat.model.eval()


def qat_train(cfg: SegConfig, opts: TrainOptions):
    """Fine-tune with fake quant from the FP32 weights in ``opts.model_path``
    (``opts.resume_model`` continues a QAT run instead)."""
    if not opts.model_path and not opts.resume_model:
        raise ValueError("QAT fine-tunes a trained FP32 model: give --model_path "
                         "(or --resume_model to continue a QAT run)")
    quant = quant_config_of(cfg)
    wrap_loss = None
    if quant.distill is not None:
        if not opts.model_path:
            raise ValueError("quant.distill: the FP32 teacher's weights come from --model_path; "
                             "give it also when resuming with --resume_model")
        teacher = build_model_for(cfg, opts.model_path)

        def wrap_loss(task_loss):
            return DistillationLoss(task_loss, teacher, quant.distill)

    fp32_weights = None if opts.resume_model else opts.model_path
    qat = qat_model_for(cfg, fp32_weights=fp32_weights)
    return train(cfg, dataclasses.replace(opts, model_path=None), model=qat.model,
                 wrap_loss=wrap_loss)


def qat_evaluate(cfg: SegConfig, qat_weights: str, num_workers: int = 0,
                 result_json: str | None = None) -> EvalResult:
    return evaluate_model(cfg, qat_model_for(cfg, qat_weights=qat_weights).model, num_workers,
                          result_json)


def quant_info(qat: QATModel) -> dict:
    """The ``Quant`` section of an INT8 export's deploy.yaml: the resolved quant config and
    the sublayers left in float."""
    return {**qat.config.model_dump(mode="json"), "skipped_layers": list(qat.skipped),
            "weights_stored_as": "int8" if qat.config.onnx_format else "float32"}


def export_qat_model(cfg: SegConfig, qat: QATModel, save_dir: str,
                     input_shape: list[int] | None = None, with_softmax: bool = False,
                     without_argmax: bool = False, argmax_before_resize: bool = False) -> Path:
    """Write ``qat`` as a legacy Paddle Inference INT8 model plus deploy.yaml (with a
    ``Quant`` section) and the resolved config."""
    qat = export_twin(qat)
    return export_model(cfg, qat.model, save_dir, input_shape, with_softmax, without_argmax,
                        saver=functools.partial(save_quantized, qat),
                        extra_info={"Quant": quant_info(qat)},
                        argmax_before_resize=argmax_before_resize)


def qat_export(cfg: SegConfig, qat_weights: str, save_dir: str,
               input_shape: list[int] | None = None, with_softmax: bool = False,
               without_argmax: bool = False, argmax_before_resize: bool = False) -> Path:
    """Export a QAT checkpoint (see ``export_qat_model``)."""
    if not qat_weights:
        raise ValueError("--model_path: give the QAT checkpoint to export")
    return export_qat_model(cfg, qat_model_for(cfg, qat_weights=qat_weights), save_dir,
                            input_shape, with_softmax, without_argmax, argmax_before_resize)
