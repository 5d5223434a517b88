"""Data parallelism through Paddle's own launcher (``python -m paddle.distributed.launch
--nproc_per_node N script.py ...``: gloo on CPU, NCCL on GPU, ``--ips`` across machines).

Each rank of a launched job calls :func:`init_distributed` once; a plain ``python script.py``
is world size 1 and touches nothing distributed. Ranks share the work this way:

- training: global iteration ``i`` takes the same samples whatever the rank count (the
  sampler deals one global batch of ``batch_size x world`` round-robin), gradients are
  averaged by ``paddle.DataParallel``, only rank 0 logs and writes;
- evaluation: rank ``r`` scores images ``r, r + N, r + 2N, ...`` and the confusion matrices
  are summed across ranks, so every rank gets the single-process result.
"""
from __future__ import annotations

import numpy as np
import paddle


def init_distributed() -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when launched with more than one
    rank (idempotent)."""
    world = paddle.distributed.get_world_size()
    if world > 1 and not paddle.distributed.is_initialized():
        paddle.distributed.init_parallel_env()
    return paddle.distributed.get_rank(), world


def current_shard() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised process group, else ``(0, 1)``."""
    if paddle.distributed.is_initialized() and paddle.distributed.get_world_size() > 1:
        return paddle.distributed.get_rank(), paddle.distributed.get_world_size()
    return 0, 1


def sum_across_ranks(array: np.ndarray) -> np.ndarray:
    """The element-wise sum of ``array`` over all ranks (itself with one rank)."""
    if current_shard()[1] == 1:
        return array
    tensor = paddle.to_tensor(np.ascontiguousarray(array))
    paddle.distributed.all_reduce(tensor)
    return tensor.numpy()
