"""Forked data-loading workers that fail loudly and stop cleanly.

``paddle.io.DataLoader`` re-raises a worker's exception in its reader thread as
``type(msg)`` with the whole traceback as the message (losing the exception's fields), and
with ``num_workers=0`` a failing sample killed its loading thread and left training waiting
forever. :func:`ordered_map` is the small part of it segq needs, done so that:

- a worker's exception is raised in the training process as the same exception, fields
  included (:class:`~segq.data.errors.DataError` pickles with its file and list line);
- Ctrl-C, which reaches the whole process group, is left to the parent: workers ignore
  SIGINT, and the parent's ``KeyboardInterrupt`` stops them;
- a worker that dies (OOM killer, segfault) is reported instead of waited for;
- a worker whose parent is gone exits instead of lingering.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import signal
import traceback
from typing import Any, Callable, Iterable, Iterator

POLL_S = 1.0  # how often a waiting parent checks its workers, and a worker its parent


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a data worker (attached as its cause)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


def _portable(exc: Exception) -> tuple[Exception, str]:
    """``exc`` as it can cross the result queue, with its formatted traceback."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception type that does not round-trip through pickle
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc, text


def _worker_main(fn: Callable[[Any], Any], tasks, results, parent_pid: int) -> None:
    # Ctrl-C goes to every process of the terminal's group: only the parent acts on it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # paddle's fatal-signal handler, inherited through fork, would print a C++ "FatalError"
    # report when the parent terminates this worker
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            item = tasks.get(timeout=POLL_S)
        except queue.Empty:
            if os.getppid() != parent_pid:
                os._exit(0)  # orphaned: nobody will read the results
            continue
        if item is None:
            return
        seq, task = item
        try:
            out = (seq, True, fn(task))
        except Exception as e:
            out = (seq, False, _portable(e))
        results.put(out)


class WorkerDiedError(RuntimeError):
    """A data-loading worker process ended without a result (killed, or it crashed)."""


def _dead_worker_error(p) -> WorkerDiedError:
    how = (f"was killed by signal {-p.exitcode}" if p.exitcode is not None and p.exitcode < 0
           else f"exited with code {p.exitcode}")
    hint = " (SIGKILL: often the out-of-memory killer; try fewer --num_workers)" \
        if p.exitcode == -signal.SIGKILL else ""
    return WorkerDiedError(f"data-loading worker {p.name} (pid {p.pid}) {how}{hint}")


def _shutdown(procs, tasks, results) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
    for q in (tasks, results):
        q.cancel_join_thread()  # never block exit flushing tasks nobody will read
        q.close()


def ordered_map(fn: Callable[[Any], Any], tasks: Iterable, num_workers: int,
                prefetch: int = 2) -> Iterator:
    """Yield ``fn(task)`` for each task, in order, computed by ``num_workers`` forked
    processes with at most ``prefetch * num_workers`` tasks in flight.

    ``fn`` and what it refers to reach the workers through ``fork`` (nothing is pickled but
    tasks and results). The workers stop when the generator ends, raises or is closed.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    ctx = mp.get_context("fork")  # the dataset reaches the workers without pickling
    task_q, result_q = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(fn, task_q, result_q, os.getpid()),
                         name=f"segq-data-{i}", daemon=True) for i in range(num_workers)]
    try:
        for p in procs:
            p.start()
        tasks = iter(tasks)
        sent = received = 0
        done: dict[int, tuple[bool, Any]] = {}
        exhausted = False
        while True:
            while not exhausted and sent - received < prefetch * num_workers:
                try:
                    task = next(tasks)
                except StopIteration:
                    exhausted = True
                    break
                task_q.put((sent, task))
                sent += 1
            if received == sent:
                return
            while received not in done:
                try:
                    seq, ok, payload = result_q.get(timeout=POLL_S)
                except queue.Empty:
                    dead = [p for p in procs if not p.is_alive()]
                    if dead:
                        raise _dead_worker_error(dead[0]) from None
                    continue
                done[seq] = (ok, payload)
            ok, payload = done.pop(received)
            received += 1
            if not ok:
                exc, text = payload
                raise exc from RemoteTraceback(text)
            yield payload
    finally:
        _shutdown(procs, task_q, result_q)
