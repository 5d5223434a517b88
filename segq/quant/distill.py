"""Distillation during QAT: the FP32 model teaches the fake-quant student its logits."""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ..config.quant import DistillConfig


def distill_term(student: paddle.Tensor, teacher: paddle.Tensor,
                 cfg: DistillConfig) -> paddle.Tensor:
    """The unweighted distillation loss between ``[N, C, H, W]`` logits (mean over pixels)."""
    if student.shape != teacher.shape:
        raise ValueError(f"student logits {student.shape} and teacher logits {teacher.shape} "
                         "differ: the teacher must be the same network")
    if cfg.loss == "mse":
        return F.mse_loss(student, teacher)
    t = cfg.temperature
    log_p_student = F.log_softmax(student / t, axis=1)
    log_p_teacher = F.log_softmax(teacher / t, axis=1)
    kl = (paddle.exp(log_p_teacher) * (log_p_teacher - log_p_student)).sum(axis=1)
    return kl.mean() * (t * t)  # T^2 keeps the gradient scale independent of T (Hinton)


class DistillationLoss:
    """``task_loss + weight * distill(student main logits, teacher main logits)``; the loss
    terms are the task terms followed by the weighted distillation term."""

    def __init__(self, task_loss, teacher: paddle.nn.Layer, cfg: DistillConfig):
        self.task_loss = task_loss
        self.teacher = teacher
        self.cfg = cfg
        teacher.eval()
        for p in teacher.parameters():
            p.stop_gradient = True

    def __call__(self, logits: list[paddle.Tensor], label: paddle.Tensor, img: paddle.Tensor):
        loss, terms = self.task_loss(logits, label, img)
        with paddle.no_grad():
            teacher_logits = self.teacher(img)[0]
        term = self.cfg.weight * distill_term(logits[0], teacher_logits, self.cfg)
        return loss + term, [*terms, float(term)]
