"""Registered optimizers and learning-rate schedules (PaddleSeg's config names)."""
from __future__ import annotations

import paddle

from ..registry import LR_SCHEDULERS, OPTIMIZERS


@OPTIMIZERS.register
def SGD(parameters, learning_rate, momentum: float = 0.9, weight_decay: float = 0.0,
        use_nesterov: bool = False, grad_clip_norm: float | None = None):
    """SGD with momentum (plain SGD when ``momentum`` is 0)."""
    clip = paddle.nn.ClipGradByGlobalNorm(grad_clip_norm) if grad_clip_norm else None
    decay = paddle.regularizer.L2Decay(weight_decay) if weight_decay else None
    if momentum:
        return paddle.optimizer.Momentum(learning_rate, momentum=momentum, parameters=parameters,
                                         use_nesterov=use_nesterov, weight_decay=decay,
                                         grad_clip=clip)
    return paddle.optimizer.SGD(learning_rate, parameters=parameters, weight_decay=decay,
                                grad_clip=clip)


@OPTIMIZERS.register
def AdamW(parameters, learning_rate, beta1: float = 0.9, beta2: float = 0.999,
          weight_decay: float = 0.01, grad_clip_norm: float | None = None):
    clip = paddle.nn.ClipGradByGlobalNorm(grad_clip_norm) if grad_clip_norm else None
    return paddle.optimizer.AdamW(learning_rate, beta1=beta1, beta2=beta2, parameters=parameters,
                                  weight_decay=weight_decay, grad_clip=clip)


def _after_warmup(decay_steps: int, warmup_iters: int) -> int:
    """The decay's length: the iterations left after the warm-up (LinearWarmup starts its
    inner schedule at step 0 when the warm-up ends). A warm-up as long as the run (tiny
    test runs) leaves a decay of one step that is never reached."""
    return max(1, decay_steps - max(0, warmup_iters))


def _with_warmup(schedule, learning_rate: float, warmup_iters: int, warmup_start_lr: float):
    if warmup_iters <= 0:
        return schedule
    return paddle.optimizer.lr.LinearWarmup(schedule, warmup_steps=warmup_iters,
                                            start_lr=warmup_start_lr, end_lr=learning_rate)


@LR_SCHEDULERS.register
def PolynomialDecay(learning_rate: float, decay_steps: int, end_lr: float = 0.0,
                    power: float = 0.9, warmup_iters: int = 0, warmup_start_lr: float = 0.0):
    """``lr = (lr0 - end_lr) * (1 - t / T) ** power + end_lr`` after an optional linear
    warm-up, with ``t`` counted from the end of the warm-up and ``T = decay_steps -
    warmup_iters``, so the rate reaches ``end_lr`` at the run's last iteration (as in
    PaddleSeg). ``decay_steps`` is the run's ``iters``, injected by the builder."""
    poly = paddle.optimizer.lr.PolynomialDecay(
        learning_rate, decay_steps=_after_warmup(decay_steps, warmup_iters), end_lr=end_lr,
        power=power)
    return _with_warmup(poly, learning_rate, warmup_iters, warmup_start_lr)


@LR_SCHEDULERS.register
def CosineAnnealingDecay(learning_rate: float, decay_steps: int, eta_min: float = 0.0,
                         warmup_iters: int = 0, warmup_start_lr: float = 0.0):
    """Cosine from ``learning_rate`` to ``eta_min`` over the iterations after the warm-up."""
    cos = paddle.optimizer.lr.CosineAnnealingDecay(
        learning_rate, T_max=_after_warmup(decay_steps, warmup_iters), eta_min=eta_min)
    return _with_warmup(cos, learning_rate, warmup_iters, warmup_start_lr)


@LR_SCHEDULERS.register
def ConstantLR(learning_rate: float, decay_steps: int = 0):
    """A fixed learning rate (``decay_steps`` is accepted and ignored)."""
    return paddle.optimizer.lr.LambdaDecay(learning_rate, lambda _: 1.0)
