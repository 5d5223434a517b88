"""The ``quant:`` config section.

Exactly the quantizer types that Paddle 3.3.1's dygraph QAT (ImperativeQuantAware) runs
through to the INT8 export, each tested there (tests/test_qat_export.py). PaddleSlim 2.6's
wrapper lists types Paddle rejects (range_abs_max, moving_average_abs_max weights). Paddle's
learned-step-size types (lsq_weight, channel_wise_lsq_weight, lsq_act) train but none of them
builds under the legacy exporter, so they are not offered; a test pins each failure.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from .base import StrictModel

WeightQuantizeType = Literal["abs_max", "channel_wise_abs_max"]
ActivationQuantizeType = Literal["moving_average_abs_max"]
QuantizableLayer = Literal["Conv2D", "Linear"]


class DistillConfig(StrictModel):
    """Distil the FP32 model's main logits into the fake-quant student during QAT."""
    # kl: KL(teacher || student) of the per-pixel class distributions at ``temperature``
    # (scaled by T^2); mse: mean squared error of the logits
    loss: Literal["kl", "mse"] = "kl"
    weight: float = Field(1.0, gt=0.0)
    temperature: float = Field(1.0, gt=0.0)


class QuantConfig(StrictModel):
    weight_quantize_type: WeightQuantizeType = "channel_wise_abs_max"
    activation_quantize_type: ActivationQuantizeType = "moving_average_abs_max"
    weight_bits: int = Field(8, ge=2, le=8)
    activation_bits: int = Field(8, ge=2, le=8)
    moving_rate: float = Field(0.9, gt=0.0, lt=1.0)
    # PaddleSlim's PACT: a learned clipping of activations before they are quantized
    activation_preprocess: Optional[Literal["PACT"]] = None
    quantizable_layer_type: list[QuantizableLayer] = Field(
        default_factory=lambda: ["Conv2D", "Linear"], min_length=1)
    # glob patterns over the model's own sublayer names (``head.*``); a match also keeps
    # every sublayer below the matched one in float
    skip_layers: list[str] = Field(default_factory=list)
    # True: the export stores INT8 weights (about 4x smaller); False: float weights
    onnx_format: bool = True
    # fold BatchNorm into the preceding conv before inserting fake quant, so the weights
    # quantized in training are the folded ones the deployment runs
    fuse_conv_bn: bool = False
    # the FP32 model as teacher during QAT (None: no distillation)
    distill: Optional[DistillConfig] = None
