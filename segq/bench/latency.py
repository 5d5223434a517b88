"""Latency and size measurement shared by the zoo table, the FP32/INT8 comparison and the
deployment benchmark."""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p90_ms: float
    mean_ms: float
    runs: int


def measure_latency(run: Callable[[np.ndarray], object], batch: np.ndarray, warmup: int = 10,
                    runs: int = 50) -> LatencyStats:
    """Call ``run(batch)`` ``warmup`` times untimed (oneDNN builds its primitives on the first
    calls), then ``runs`` times timed one by one."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - t0) * 1000.0)
    return LatencyStats(median_ms=statistics.median(times),
                        p90_ms=float(np.percentile(times, 90)),
                        mean_ms=statistics.fmean(times), runs=runs)


def files_size_mb(paths: Iterable[str | os.PathLike]) -> float:
    """On-disk size in MiB of the files a deployment ships (e.g. model + params)."""
    return sum(Path(p).stat().st_size for p in paths) / 2**20
