"""Latency and size measurement shared by the zoo table, the FP32/INT8 comparison and the
deployment benchmark."""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    times_ms: tuple[float, ...] = ()  # every timed run, in the order taken (the p90's evidence)


def _timed_ms(run: Callable[[np.ndarray], object], batch: np.ndarray, count: int) -> list[float]:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _stats(times: list[float]) -> LatencyStats:
    return LatencyStats(median_ms=statistics.median(times),
                        p90_ms=float(np.percentile(times, 90)),
                        mean_ms=statistics.fmean(times), runs=len(times), times_ms=tuple(times))


def measure_latency(run: Callable[[np.ndarray], object], batch: np.ndarray, warmup: int = 10,
                    runs: int = 50) -> LatencyStats:
    """Call ``run(batch)`` ``warmup`` times untimed (oneDNN builds its primitives on the first
    calls), then ``runs`` times timed one by one."""
    return measure_interleaved([run], batch, warmup, runs, rounds=1)[0]


def measure_interleaved(runs_of: Sequence[Callable[[np.ndarray], object]], batch: np.ndarray,
                        warmup: int = 10, runs: int = 50, rounds: int = 5,
                        settle: int = 2, settle_max: int = 10) -> list[LatencyStats]:
    """Latency of several engines measured side by side: each is warmed up, then the timed
    ``runs`` of each are split into ``rounds`` blocks taken in turn (A B C A B C ...), each
    block after ``settle`` untimed runs, or more (up to ``settle_max``) while the engine is
    still slower than ``SETTLED`` x its fastest untimed run so far.

    Why: on a shared (virtual) machine the speed of memory-bound kernels drifts for minutes
    at a time, so engines measured one after the other can rank differently from run to run;
    taken in turn, every engine sees the same drift and their ratios hold. The untimed runs
    let the previous engine's worker threads, which spin-wait for a while after their last
    job (ONNX Runtime, OpenMP), go to sleep before the clock starts, and let an engine whose
    working set the previous one evicted come back to speed: PP-LiteSeg-T's FP32 model under
    ONNX Runtime ran its first 1-2 runs after Paddle's at 2-3x its time (docs/experiments/
    2026-12-05-argmax-ties-and-pp-liteseg-benchmark.md), so a fixed count left them in p90."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    rounds = max(1, min(rounds, runs))
    fastest = [min(_timed_ms(run, batch, warmup), default=float("inf")) for run in runs_of]
    times: list[list[float]] = [[] for _ in runs_of]
    for r in range(rounds):
        count = runs // rounds + (r < runs % rounds)
        for i, run in enumerate(runs_of):
            if rounds > 1:
                fastest[i] = _settle(run, batch, settle, settle_max, fastest[i])
            times[i] += _timed_ms(run, batch, count)
    return [_stats(t) for t in times]


SETTLED = 1.25  # an engine is back to speed within this factor of its fastest untimed run


def _settle(run: Callable[[np.ndarray], object], batch: np.ndarray, least: int, most: int,
            fastest: float) -> float:
    """Untimed runs until the engine is back to speed; returns its fastest run so far."""
    for n in range(max(least, most)):
        last = _timed_ms(run, batch, 1)[0]
        fastest = min(fastest, last)
        # (0.1 ms of slack: sub-millisecond runs jitter by more than 25%)
        if n + 1 >= least and last <= max(SETTLED * fastest, fastest + 0.1):
            break
    return fastest


def files_size_mb(paths: Iterable[str | os.PathLike]) -> float:
    """On-disk size in MiB of the files a deployment ships (e.g. model + params)."""
    return sum(Path(p).stat().st_size for p in paths) / 2**20
