"""Batches for training (infinite, sharded, exactly resumable) and samples for evaluation.

The sampler, not the workers, decides everything random: it yields ``(index, sample_seed)``
keys and the dataset seeds each sample's augmentation from its key. A batch is therefore a
pure function of ``(seed, iteration, rank, world_size)``, whatever ``num_workers`` is, and a
run restarted at ``start_iter`` sees the batches the uninterrupted run would have seen
(``skip_bad_files`` keeps this: a bad sample is replaced by the next good index with the
same seed).
"""
from __future__ import annotations

import functools
import logging
import numbers
from typing import Iterable, Iterator, Sequence

import numpy as np

from .workers import ordered_map

logger = logging.getLogger("segq")


class InfiniteShardedSampler:
    """Yield batches of ``(index, sample_seed)`` forever, starting at ``start_iter``.

    Epoch ``e`` visits ``np.random.default_rng((seed, e)).permutation(dataset_len)``; the
    first ``dataset_len // world_size * world_size`` positions are dealt round-robin to the
    ranks, each rank batches its share and drops the incomplete last batch. The seed of the
    sample at position ``p`` of epoch ``e`` is derived from ``(seed, e, p)`` alone.
    """

    def __init__(self, dataset_len: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, start_iter: int = 0):
        for name, v, low in (("dataset_len", dataset_len, 1), ("batch_size", batch_size, 1),
                             ("seed", seed, 0), ("world_size", world_size, 1),
                             ("start_iter", start_iter, 0), ("rank", rank, 0)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        if rank >= world_size:
            raise ValueError(f"rank {rank} must be < world_size {world_size}")
        self.dataset_len, self.batch_size = int(dataset_len), int(batch_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.start_iter = int(start_iter)
        self.batches_per_epoch = (self.dataset_len // self.world_size) // self.batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{self.dataset_len} samples cannot fill one batch of {self.batch_size} on "
                f"each of {self.world_size} rank(s); lower batch_size or add data")

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch)).permutation(self.dataset_len)

    def sample_seed(self, epoch: int, position: int) -> int:
        state = np.random.SeedSequence((self.seed, epoch, position)).generate_state(2)
        return (int(state[0]) << 32 | int(state[1])) & (2**63 - 1)

    def batch(self, iteration: int, order: np.ndarray | None = None) -> list[tuple[int, int]]:
        """The keys of global iteration ``iteration`` on this rank."""
        epoch, b = divmod(iteration, self.batches_per_epoch)
        order = self.epoch_order(epoch) if order is None else order
        first = b * self.batch_size
        positions = [(first + j) * self.world_size + self.rank for j in range(self.batch_size)]
        return [(int(order[p]), self.sample_seed(epoch, p)) for p in positions]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iter
        epoch, order = None, None
        while True:
            e = it // self.batches_per_epoch
            if e != epoch:  # one permutation per epoch, not per batch
                epoch, order = e, self.epoch_order(e)
            yield self.batch(it, order)
            it += 1


def collate_train(samples: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Stack samples into ``(img float32 NCHW, label int64 NHW)``."""
    shapes = {s["img"].shape for s in samples}
    if len(shapes) > 1:
        raise ValueError(f"training samples differ in size {sorted(shapes)}: end the train "
                         f"transforms with a fixed-size op (RandomPaddingCrop, Resize)")
    if any(s.get("label") is None for s in samples):
        raise ValueError("a training sample has no label (is a test-mode dataset used for "
                         "training?)")
    img = np.stack([s["img"] for s in samples]).astype(np.float32, copy=False)
    label = np.stack([s["label"] for s in samples]).astype(np.int64, copy=False)
    return img, label


def load_batch(dataset, keys: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, list]:
    """``(img, label)`` of the samples at ``keys``, plus the files skipped on the way."""
    samples = [dataset[key] for key in keys]
    img, label = collate_train(samples)
    return img, label, [e for s in samples for e in s.get("skipped", ())]


class SkipReport:
    """Logs each bad file skipped (``skip_bad_files``) once, and keeps them by path."""

    def __init__(self, what: str):
        self.what = what
        self.files: dict[str, Exception] = {}

    def add(self, errors: Iterable[Exception]) -> None:
        for e in errors:
            key = getattr(e, "path", None) or str(e)
            if key not in self.files:
                self.files[key] = e
                logger.warning(f"skip_bad_files: skipped a bad {self.what} file "
                               f"({len(self.files)} so far): {e}")


class TrainBatches:
    """The endless iterator of ``(img, label)`` paddle tensors :func:`build_train_loader`
    returns; ``skipped_files`` maps each bad file skipped so far to its error."""

    def __init__(self, dataset, sampler: InfiniteShardedSampler, num_workers: int):
        load = functools.partial(load_batch, dataset)
        # num_workers=0 loads in this thread, so an error is raised right here (paddle's
        # DataLoader loaded in a thread that died on it, leaving training waiting forever)
        self._arrays = (map(load, sampler) if num_workers == 0
                        else ordered_map(load, sampler, num_workers))
        self._skips = SkipReport("training")

    @property
    def skipped_files(self) -> dict[str, Exception]:
        return self._skips.files

    def __iter__(self) -> "TrainBatches":
        return self

    def __next__(self):
        import paddle  # here, so importing segq.data stays light

        img, label, skipped = next(self._arrays)
        self._skips.add(skipped)
        return paddle.to_tensor(img), paddle.to_tensor(label)

    def close(self) -> None:
        """Stop the worker processes (if any); they also stop when this is garbage."""
        close = getattr(self._arrays, "close", None)
        if close is not None:
            close()


def build_train_loader(dataset, batch_size: int, num_workers: int, seed: int,
                       start_iter: int = 0, rank: int = 0, world_size: int = 1) -> TrainBatches:
    """An endless iterator of ``(img, label)`` paddle tensors, resuming at ``start_iter``.

    ``dataset[key]`` gets the sampler's ``(index, seed)`` keys, in this process
    (``num_workers=0``) or in forked workers (:mod:`segq.data.workers`); a bad sample raises
    its :class:`~segq.data.errors.DataError` here either way.
    """
    sampler = InfiniteShardedSampler(len(dataset), batch_size, seed, rank, world_size,
                                     start_iter)
    # No cv2.setNumThreads(1) in the workers: in a forked worker it deadlocks tearing
    # down the thread pool inherited from a parent that already ran cv2 in parallel.
    return TrainBatches(dataset, sampler, num_workers)


def build_eval_loader(dataset, num_workers: int = 0,
                      indices: Sequence[int] | None = None) -> Iterator[dict]:
    """Yield the dataset's samples (those at ``indices``, default all) in order, one dict at
    a time (numpy arrays: ``img`` float32 CHW, ``label``/``ori_label`` int64 HW), so images
    may differ in size."""
    indices = range(len(dataset)) if indices is None else indices
    if num_workers and num_workers > 0:
        samples = ordered_map(dataset.__getitem__, indices, num_workers)
    else:
        samples = (dataset[i] for i in indices)
    skips = SkipReport("evaluation (the next good sample is scored in its place)")
    try:
        for sample in samples:
            skips.add(sample.pop("skipped", ()))
            yield sample
    finally:
        samples.close()  # stops the workers when evaluation ends early
