"""The training loop: fetch a batch, one step, then the hooks do everything else.

Ctrl-C (``KeyboardInterrupt``) anywhere in the loop becomes :class:`TrainingInterrupted`,
whose message the hooks fill in (the checkpoint hook names the last checkpoint to resume
from); the CLI prints it as one line.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import paddle

from ..checkpoint import TrainState
from ..models.layers import batch_norm_layers


@dataclass
class StepOutput:
    loss: float
    loss_terms: list[float]
    batch_size: int
    data_time: float
    step_time: float


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; the message says where and what to resume from."""

    def __str__(self) -> str:  # KeyboardInterrupt would show the args tuple's repr
        return str(self.args[0]) if self.args else "interrupted"


class Hook:
    """Override what you need; ``trainer`` gives access to model, optimizer, state, iteration."""

    def before_run(self, trainer: "Trainer") -> None: ...

    def after_iter(self, trainer: "Trainer", out: StepOutput) -> None: ...

    def after_run(self, trainer: "Trainer") -> None: ...

    def on_interrupt(self, trainer: "Trainer") -> str | None:
        """Called after Ctrl-C stopped the loop; return what the user should know, if any.
        Keep it quick and free of side effects: the user is waiting to get the prompt back."""
        return None


class Trainer:
    def __init__(self, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                 loss_fn: Callable, batches: Iterator, max_iters: int,
                 hooks: Sequence[Hook] = (), state: TrainState | None = None,
                 is_main: bool = True, freeze_bn_stats: bool = False,
                 started_at: float | None = None):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.batches = batches
        self.max_iters = max_iters
        self.hooks = list(hooks)
        self.state = state or TrainState()
        self.is_main = is_main  # only rank 0 writes files and logs
        # BN layers put back in eval mode after every model.train(): they normalise with
        # their loaded running statistics and leave them unchanged
        self.frozen_bn = batch_norm_layers(model) if freeze_bn_stats else []
        # the run's wall time counts from ``started_at`` (time.perf_counter(), default now),
        # added to what a resumed run had already spent
        self._started_at = time.perf_counter() if started_at is None else started_at
        self._time_before = float(self.state.extra.get("wall_time_s", 0.0))

    def wall_time(self) -> float:
        """Seconds this run has taken so far, evaluations included (and, when resumed, the
        earlier part's)."""
        return self._time_before + time.perf_counter() - self._started_at

    @property
    def iteration(self) -> int:
        return self.state.iteration

    @property
    def lr(self) -> float:
        return float(self.optimizer.get_lr())

    def train_step(self, img: paddle.Tensor, label: paddle.Tensor) -> tuple[float, list[float]]:
        self.model.train()
        for bn in self.frozen_bn:
            bn.eval()
        logits = self.model(img)
        loss, terms = self.loss_fn(logits, label, img)
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        return float(loss), terms

    def fit(self) -> TrainState:
        try:
            self._loop()
        except KeyboardInterrupt:
            raise TrainingInterrupted(self._interrupt_message()) from None
        finally:
            # stops the data workers now, not whenever the iterator is garbage-collected
            close = getattr(self.batches, "close", None)
            if close is not None:
                close()
        for hook in self.hooks:
            hook.after_run(self)
        return self.state

    def _loop(self) -> None:
        for hook in self.hooks:
            hook.before_run(self)
        while self.state.iteration < self.max_iters:
            t0 = time.perf_counter()
            img, label = next(self.batches)
            t1 = time.perf_counter()
            loss, terms = self.train_step(img, label)
            self.state.iteration += 1
            out = StepOutput(loss, terms, int(img.shape[0]), t1 - t0, time.perf_counter() - t1)
            for hook in self.hooks:
                hook.after_iter(self, out)

    def _interrupt_message(self) -> str:
        notes = [n for n in (hook.on_interrupt(self) for hook in self.hooks) if n]
        done = f"interrupted after iter {self.iteration}/{self.max_iters}"
        return "; ".join([done, *notes])
