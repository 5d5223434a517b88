"""The training workflows behind the CLI scripts: train and evaluate a dygraph model.

Each takes a validated config plus a small options object and returns a result; none
parses arguments or exits.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import paddle

from .. import builders
from ..checkpoint import TrainState, resume_checkpoint, seed_everything
from ..config import SegConfig, dump_config
from ..cpu_runtime import paddle_threads, run_environment
from ..metrics import EvalResult
from .distributed import init_distributed
from .evaluator import evaluate
from .hooks import CheckpointHook, LoggerHook, LrSchedulerHook
from .trainer import Trainer

logger = logging.getLogger("segq")


@dataclass(frozen=True)
class TrainOptions:
    save_dir: str = "output"
    model_path: str | None = None      # weights to start from
    resume_model: str | None = None    # checkpoint dir to continue from
    do_eval: bool = False
    save_interval: int = 1000
    keep_checkpoint_max: int = 5
    log_iters: int = 10
    num_workers: int = 0
    use_vdl: bool = False
    seed: int = 0
    overwrite: bool = False            # replace the run already in save_dir
    quantize: bool = False             # QAT: fake quant from the config's quant section

    def __post_init__(self):
        if self.quantize and not self.model_path and not self.resume_model:
            raise ValueError("QAT fine-tunes a trained FP32 model: give --model_path "
                             "(or --resume_model to continue a QAT run)")
        for name, low in (("save_interval", 1), ("keep_checkpoint_max", 1), ("log_iters", 1),
                          ("num_workers", 0), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"--{name} must be an integer >= {low}, got {value!r}")


def _sync_batch_norm(model: paddle.nn.Layer, cfg: SegConfig, world: int) -> paddle.nn.Layer:
    """``sync_bn: true`` in a data-parallel run: BatchNorm layers become SyncBatchNorm."""
    if not cfg.sync_bn or world == 1:
        return model
    if not paddle.is_compiled_with_cuda() or paddle.get_device().startswith("cpu"):
        raise ValueError("sync_bn: true needs GPUs: Paddle has no CPU kernel for "
                         "SyncBatchNorm (\"The kernel `sync_batch_norm` is not registered\" "
                         "on 3.3.1); on CPU ranks use freeze_bn_stats: true")
    return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def train(cfg: SegConfig, opts: TrainOptions, extra_hooks=()) -> TrainState:
    """Train the config's model from ``opts.model_path`` (with ``opts.quantize``, its
    fake-quant model: QAT); ``extra_hooks`` run between the lr and checkpoint hooks."""
    from ..config.validate import recipe_warnings
    from ..data.check import check_files_exist
    from ..data.loader import build_train_loader
    from .run_dir import check_run_dir, clear_run_dir

    started_at = time.perf_counter()
    rank, world = init_distributed()
    seed_everything(opts.seed + rank)
    save_dir = Path(opts.save_dir)
    check_run_dir(save_dir, opts.resume_model, opts.overwrite)  # read-only: fails fast
    for warning in recipe_warnings(cfg):
        logger.warning(warning)
    # Everything is built and checked before the first file is written, so a run that
    # fails on its config, data or weights leaves save_dir as it found it.
    # a resumed run's weights come from its checkpoint
    weights = None if opts.resume_model else opts.model_path
    model = builders.build_train_model(cfg, weights, opts.quantize)
    loss_fn = builders.build_train_loss(cfg, opts.quantize, teacher_weights=opts.model_path)
    scheduler = builders.build_lr_scheduler(cfg.lr_scheduler, cfg.iters)
    optimizer = builders.build_optimizer(cfg.optimizer, model, scheduler)
    state = TrainState(extra=run_environment())
    if opts.resume_model:
        state = resume_checkpoint(opts.resume_model, model, optimizer)
        logger.info(f"resumed from {opts.resume_model} at iter {state.iteration}")
    for warning in resume_warnings(state, cfg, world) if opts.resume_model else ():
        logger.warning(warning)
    state.extra.update(iters=cfg.iters, batch_size=cfg.batch_size, world_size=world)
    train_set = builders.build_dataset(cfg.train_dataset, "train_dataset")
    val_set = builders.build_dataset(cfg.val_dataset, "val_dataset") if opts.do_eval else None
    for dataset in (train_set, val_set):  # every listed file exists: fails in seconds
        if dataset is not None:
            check_files_exist(dataset)
    net = paddle.DataParallel(_sync_batch_norm(model, cfg, world)) if world > 1 else model
    batches = build_train_loader(train_set, cfg.batch_size, opts.num_workers, opts.seed,
                                 start_iter=state.iteration, rank=rank, world_size=world)
    if rank == 0:
        if opts.overwrite and not opts.resume_model:
            removed = clear_run_dir(save_dir)
            if removed:
                logger.warning(f"--overwrite: removed {', '.join(removed)} from {save_dir}")
        dump_config(cfg, save_dir / "config.yml")
    writer = None
    if opts.use_vdl and rank == 0:
        from visualdl import LogWriter
        writer = LogWriter(str(save_dir / "vdl"))
    evaluate_fn = None
    if val_set is not None:
        def evaluate_fn() -> EvalResult:
            return evaluate(model, val_set, cfg.test_config, opts.num_workers)
    hooks = [LrSchedulerHook(scheduler), LoggerHook(opts.log_iters, writer),
             *extra_hooks,
             CheckpointHook(save_dir, opts.save_interval, evaluate_fn, opts.keep_checkpoint_max,
                            writer)]
    trainer = Trainer(net, optimizer, loss_fn, batches, cfg.iters, hooks, state,
                      is_main=rank == 0, freeze_bn_stats=cfg.freeze_bn_stats,
                      started_at=started_at)
    logger.info(f"training {type(model).__name__} for {cfg.iters} iters "
                f"(from {state.iteration}), batch {cfg.batch_size}, "
                f"{len(train_set)} train images, OMP threads {paddle_threads()}"
                + (f"; BatchNorm statistics frozen in {len(trainer.frozen_bn)} layers"
                   if cfg.freeze_bn_stats else ""))
    try:
        return trainer.fit()
    finally:
        if writer is not None:
            writer.close()


def resume_warnings(state: TrainState, cfg: SegConfig, world_size: int = 1) -> list[str]:
    """What changes when a run is resumed with another length or global batch (batch size
    per rank x ranks) than it was started with: the lr schedule is recomputed over the new
    length, the data order over the new global batch, so the result is not what an
    uninterrupted run would give. Another rank count at the same global batch changes
    nothing: global iteration i takes the same samples."""
    out = []
    old_iters = state.extra.get("iters")
    if old_iters is not None and old_iters != cfg.iters:
        now, was = (_lr_at(cfg, n, state.iteration) for n in (cfg.iters, old_iters))
        out.append(f"resuming a {old_iters}-iteration run as a {cfg.iters}-iteration run: the "
                   f"lr schedule is recomputed over {cfg.iters} iterations (lr at iter "
                   f"{state.iteration}: {now:.6g} now, {was:.6g} in the original run), so the "
                   f"result is neither run's")
    old_batch = state.extra.get("batch_size")
    if old_batch is not None:
        old_global = old_batch * state.extra.get("world_size", 1)
        new_global = cfg.batch_size * world_size
        if old_global != new_global:
            out.append(f"resuming a run of global batch {old_global} (batch_size {old_batch} x "
                       f"{state.extra.get('world_size', 1)} rank(s)) with global batch "
                       f"{new_global} ({cfg.batch_size} x {world_size}): the data order "
                       f"differs from the original run's from here on")
    return out


def _lr_at(cfg: SegConfig, iters: int, iteration: int) -> float:
    scheduler = builders.build_lr_scheduler(cfg.lr_scheduler, iters)
    scheduler.last_epoch = iteration
    return float(scheduler.get_lr())


def evaluate_model(cfg: SegConfig, model: paddle.nn.Layer, num_workers: int = 0,
                   result_json: str | None = None) -> EvalResult:
    """Score a dygraph model on the config's val set; optionally write the JSON. Under
    ``paddle.distributed.launch`` the ranks share the images and rank 0 writes."""
    rank, _ = init_distributed()
    dataset = builders.build_dataset(cfg.val_dataset, "val_dataset")
    result = evaluate(model, dataset, cfg.test_config, num_workers)
    if result_json and rank == 0:
        result.write_json(result_json)
    return result


def evaluate_checkpoint(cfg: SegConfig, model_path: str | None, num_workers: int = 0,
                        result_json: str | None = None) -> EvalResult:
    return evaluate_model(cfg, builders.build_model_for(cfg, model_path), num_workers,
                          result_json)
