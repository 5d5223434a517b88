"""Typed, validated config objects.

Unknown keys and wrong types fail in pydantic with their key path; component sections
(``type:`` + kwargs) are then checked against their registry: the type must be registered
and every kwarg must be accepted by its constructor. Everything fails before any work.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from .base import StrictModel
from .quant import QuantConfig


class Component(BaseModel):
    """``{type: Name, **kwargs}``; the kwargs are checked against the registry later."""
    model_config = ConfigDict(extra="allow", frozen=True)
    type: str

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.kwargs()}


class LossConfig(StrictModel):
    """One loss per model output (main first), each weighted by its coefficient."""
    types: list[Component] = Field(min_length=1)
    coef: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _lengths_match(self):
        if len(self.types) not in (1, len(self.coef)):
            raise ValueError(f"loss.types has {len(self.types)} entries but loss.coef has "
                             f"{len(self.coef)}: give one type, or one per coefficient")
        return self


class TestConfig(StrictModel):
    aug_eval: bool = False
    scales: list[PositiveFloat] = Field(default_factory=lambda: [1.0], min_length=1)
    flip_horizontal: bool = False
    flip_vertical: bool = False
    is_slide: bool = False
    crop_size: Optional[tuple[PositiveInt, PositiveInt]] = None  # (w, h), as PaddleSeg
    stride: Optional[tuple[PositiveInt, PositiveInt]] = None     # (w, h)

    @model_validator(mode="after")
    def _slide_needs_window(self):
        if self.is_slide and (self.crop_size is None or self.stride is None):
            raise ValueError("is_slide: true needs crop_size [w, h] and stride [w, h]")
        return self


class ExportConfig(StrictModel):
    # Preprocessing written to deploy.yaml; defaults to the val dataset's transforms.
    transforms: Optional[list[Component]] = None


class SegConfig(StrictModel):
    batch_size: PositiveInt = 2
    iters: PositiveInt
    train_dataset: Optional[Component] = None
    val_dataset: Optional[Component] = None
    model: Component
    optimizer: Component = Component(type="SGD", momentum=0.9, weight_decay=4.0e-5)
    lr_scheduler: Component
    loss: LossConfig
    test_config: TestConfig = TestConfig()
    export: ExportConfig = ExportConfig()
    quant: Optional[QuantConfig] = None
    # Keep BatchNorm's running statistics as loaded while training: BN layers normalise with
    # them (eval mode) and their scale and shift still learn. For short fine-tunes (QAT and
    # its FP32 control), where re-estimating the statistics from a few small batches can cost
    # more accuracy than the fine-tune recovers.
    freeze_bn_stats: bool = False
    # Data-parallel training (paddle.distributed.launch): BatchNorm statistics over the
    # global batch instead of each rank's share (SyncBatchNorm, converted when the model is
    # built). GPU (NCCL) only: Paddle 3.3.1 has no CPU kernel for it; on CPU ranks use
    # freeze_bn_stats for results that do not depend on the rank count.
    sync_bn: bool = False
