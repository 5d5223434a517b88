"""QAT as it reads: prepare (``builders.build_qat_model``: FP32 weights in, fake quant
inserted from ``cfg.quant``) -> fine-tune (the training engine, ``TrainOptions.quantize``)
-> evaluate -> export (INT8 inference model).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

from ..builders import build_qat_model
from ..config import SegConfig
from ..deploy.export import ExportOptions, ModelWriter
from ..deploy.workflows import export_model
from ..engine.workflows import TrainOptions, evaluate_model, train
from ..metrics import EvalResult
from .paddleslim_adapter import QATModel, export_twin, save_quantized

logger = logging.getLogger("segq")


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
    return train(cfg, dataclasses.replace(opts, quantize=True))


def qat_evaluate(cfg: SegConfig, qat_weights: str, num_workers: int = 0,
                 result_json: str | None = None) -> EvalResult:
    return evaluate_model(cfg, build_qat_model(cfg, qat_weights=qat_weights).model,
                          num_workers, result_json)


def quant_info(qat: QATModel) -> dict:
    """The ``Quant`` section of an INT8 export's deploy.yaml: the resolved quant config and
    the sublayers left in float."""
    return {"method": "qat", **qat.config.model_dump(mode="json"),
            "skipped_layers": list(qat.skipped),
            "weights_stored_as": "int8" if qat.config.onnx_format else "float32"}


def export_qat_model(cfg: SegConfig, qat: QATModel, save_dir: str | Path,
                     options: ExportOptions = ExportOptions()) -> Path:
    """Write ``qat`` as a legacy Paddle Inference INT8 model plus deploy.yaml (with a
    ``Quant`` section) and the resolved config."""
    twin = export_twin(qat)
    writer = ModelWriter(save=functools.partial(save_quantized, twin),
                         sections={"Quant": quant_info(twin)})
    return export_model(cfg, twin.model, save_dir, options, writer)


def qat_export(cfg: SegConfig, qat_weights: str, save_dir: str,
               options: ExportOptions = ExportOptions()) -> Path:
    """Export a QAT checkpoint (see ``export_qat_model``)."""
    if not qat_weights:
        raise ValueError("--model_path: give the QAT checkpoint to export")
    return export_qat_model(cfg, build_qat_model(cfg, qat_weights=qat_weights), save_dir,
                            options)
