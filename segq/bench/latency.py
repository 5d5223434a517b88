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
                        mean_ms=statistics.fmean(times), runs=len(times))


def measure_latency(run: Callable[[np.ndarray], object], batch: np.ndarray, warmup: int = 10,
                    runs: int = 50) -> LatencyStats:
    """Call ``run(batch)`` ``warmup`` times untimed (oneDNN builds its primitives on the first
    calls), then ``runs`` times timed one by one."""
    return measure_interleaved([run], batch, warmup, runs, rounds=1)[0]


def measure_interleaved(runs_of: Sequence[Callable[[np.ndarray], object]], batch: np.ndarray,
                        warmup: int = 10, runs: int = 50, rounds: int = 5,
                        settle: int = 2) -> list[LatencyStats]:
    """Latency of several engines measured side by side: each is warmed up, then the timed
    ``runs`` of each are split into ``rounds`` blocks taken in turn (A B C A B C ...), each
    block after ``settle`` untimed runs.

    Why: on a shared (virtual) machine the speed of memory-bound kernels drifts for minutes
    at a time, so engines measured one after the other can rank differently from run to run;
    taken in turn, every engine sees the same drift and their ratios hold. The untimed runs
    let the previous engine's worker threads, which spin-wait for a while after their last
    job (ONNX Runtime, OpenMP), go to sleep before the clock starts."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    rounds = max(1, min(rounds, runs))
    for run in runs_of:
        for _ in range(warmup):
            run(batch)
    times: list[list[float]] = [[] for _ in runs_of]
    for r in range(rounds):
        count = runs // rounds + (r < runs % rounds)
        for i, run in enumerate(runs_of):
            if rounds > 1:
                for _ in range(settle):
                    run(batch)
            times[i] += _timed_ms(run, batch, count)
    return [_stats(t) for t in times]


def files_size_mb(paths: Iterable[str | os.PathLike]) -> float:
    """On-disk size in MiB of the files a deployment ships (e.g. model + params)."""
    return sum(Path(p).stat().st_size for p in paths) / 2**20
