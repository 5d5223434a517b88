"""Training hooks: lr schedule, progress logging (+VisualDL), checkpoint + eval + best model."""
from __future__ import annotations

import logging
import shutil
from collections import deque
from pathlib import Path
from typing import Callable

from ..checkpoint import copy_checkpoint, iteration_checkpoints, save_checkpoint
from ..metrics import EvalResult
from .trainer import Hook, StepOutput, Trainer

logger = logging.getLogger("segq")


class LrSchedulerHook(Hook):
    """Steps the lr schedule once per iteration (its state lives in the optimizer's)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def after_iter(self, trainer: Trainer, out: StepOutput) -> None:
        self.scheduler.step()


def format_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class LoggerHook(Hook):
    """Every ``log_iters``: mean loss, lr, step and data time, samples/s and ETA."""

    def __init__(self, log_iters: int = 10, vdl_writer=None):
        self.log_iters = max(1, log_iters)
        self.writer = vdl_writer
        self.window: deque[StepOutput] = deque(maxlen=self.log_iters)

    def after_iter(self, trainer: Trainer, out: StepOutput) -> None:
        self.window.append(out)
        it = trainer.iteration
        if not trainer.is_main or (it % self.log_iters and it != trainer.max_iters):
            return
        n = len(self.window)
        loss = sum(o.loss for o in self.window) / n
        batch_cost = sum(o.data_time + o.step_time for o in self.window) / n
        data_cost = sum(o.data_time for o in self.window) / n
        ips = sum(o.batch_size for o in self.window) / max(1e-9, batch_cost * n)
        lr = trainer.lr
        logger.info(f"[TRAIN] iter: {it}/{trainer.max_iters}, loss: {loss:.4f}, lr: {lr:.6f}, "
                    f"batch_cost: {batch_cost:.3f}s, reader_cost: {data_cost:.4f}s, "
                    f"ips: {ips:.2f} samples/s | ETA {format_eta(batch_cost * (trainer.max_iters - it))}")
        if self.writer is not None:
            self.writer.add_scalar("Train/loss", loss, it)
            for i, term in enumerate(out.loss_terms):
                self.writer.add_scalar(f"Train/loss_{i}", term, it)
            self.writer.add_scalar("Train/lr", lr, it)
            self.writer.add_scalar("Train/batch_cost", batch_cost, it)
            self.writer.add_scalar("Train/reader_cost", data_cost, it)

    def after_run(self, trainer: Trainer) -> None:
        # each skipped file was logged when met; the total is easy to miss among them
        skipped = getattr(trainer.batches, "skipped_files", None)
        if skipped and trainer.is_main:
            names = list(skipped)
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            logger.warning(f"skip_bad_files: {len(names)} bad training file(s) were skipped "
                           f"and replaced by the next good sample: {', '.join(names[:10])}"
                           f"{more}")


class CheckpointHook(Hook):
    """Every ``save_interval`` (and at the end): evaluate (if given an ``evaluate_fn``),
    write ``iter_N/`` atomically, publish ``best_model/`` when val mIoU improves, and keep
    only the newest ``keep_checkpoint_max`` iteration checkpoints."""

    def __init__(self, save_dir: str | Path, save_interval: int,
                 evaluate_fn: Callable[[], EvalResult] | None = None,
                 keep_checkpoint_max: int = 5, vdl_writer=None):
        self.save_dir = Path(save_dir)
        self.save_interval = save_interval
        self.evaluate_fn = evaluate_fn
        self.keep = max(1, keep_checkpoint_max)
        self.writer = vdl_writer

    def after_iter(self, trainer: Trainer, out: StepOutput) -> None:
        it = trainer.iteration
        if it % self.save_interval and it != trainer.max_iters:
            return
        result = self.evaluate_fn() if self.evaluate_fn is not None else None
        if not trainer.is_main:
            return
        state = trainer.state
        improved = result is not None and result.miou > state.best_miou
        if improved:
            state.best_miou, state.best_iter = result.miou, it
        # the state saved with the checkpoint counts this evaluation too: the last one then
        # holds the whole run's wall time
        state.extra["wall_time_s"] = trainer.wall_time()
        ckpt = save_checkpoint(self.save_dir / f"iter_{it}", trainer.model, trainer.optimizer,
                               state)
        if result is not None:
            result.write_json(ckpt / "eval.json")
            logger.info(result.summary())
            logger.info(f"[EVAL] best mIoU {state.best_miou:.4f} at iter {state.best_iter}")
            if self.writer is not None:
                self.writer.add_scalar("Evaluate/mIoU", result.miou, it)
                self.writer.add_scalar("Evaluate/Acc", result.acc, it)
                self.writer.add_scalar("Evaluate/Kappa", result.kappa, it)
        if improved:
            copy_checkpoint(ckpt, self.save_dir / "best_model")
        self._prune()

    def on_interrupt(self, trainer: Trainer) -> str:
        if not trainer.is_main:
            return ""
        # iter_N dirs appear by an atomic rename, so the newest one is complete (an
        # interrupted write leaves only iter_N.tmp, which is not listed)
        saved = iteration_checkpoints(self.save_dir)
        if not saved:
            due = min((trainer.iteration // self.save_interval + 1) * self.save_interval,
                      trainer.max_iters)
            return (f"no checkpoint was written to {self.save_dir} yet (the next is due at "
                    f"iter {due}); start again with --overwrite")
        return f"last good checkpoint: {saved[-1]}; resume with --resume_model {saved[-1]}"

    def _prune(self) -> None:
        for old in iteration_checkpoints(self.save_dir)[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
