"""Streaming comparisons of a tensor with its reference over many images: cosine similarity,
signal-to-noise ratio, and summary statistics (quartiles from a bounded random sample)."""
from __future__ import annotations

import math

import numpy as np

SAMPLE_PER_UPDATE = 4096


class Agreement:
    """Cosine and SNR (dB) of ``test`` against ``ref``, pooled over every update."""

    def __init__(self):
        self.dot = self.ref_sq = self.test_sq = self.err_sq = 0.0

    def update(self, ref: np.ndarray, test: np.ndarray) -> None:
        r = ref.astype(np.float64).ravel()
        t = test.astype(np.float64).ravel()
        self.dot += float(r @ t)
        self.ref_sq += float(r @ r)
        self.test_sq += float(t @ t)
        self.err_sq += float(((r - t) ** 2).sum())

    @property
    def cosine(self) -> float:
        denom = math.sqrt(self.ref_sq * self.test_sq)
        return self.dot / denom if denom else (1.0 if self.err_sq == 0 else 0.0)

    @property
    def snr_db(self) -> float:
        if self.err_sq == 0:
            return math.inf
        return 10 * math.log10(self.ref_sq / self.err_sq) if self.ref_sq else -math.inf


def cosine(ref: np.ndarray, test: np.ndarray) -> float:
    a = Agreement()
    a.update(ref, test)
    return a.cosine


class Summary:
    """min / quartiles / max / mean / std of every value seen; the quartiles come from up to
    ``SAMPLE_PER_UPDATE`` values drawn per update (seeded, so a report is reproducible)."""

    def __init__(self, seed: int = 0):
        self.count = 0
        self.total = self.total_sq = 0.0
        self.low, self.high = math.inf, -math.inf
        self.samples: list[np.ndarray] = []
        self.rng = np.random.default_rng(seed)

    def update(self, x: np.ndarray) -> None:
        x = x.astype(np.float64).ravel()
        if not x.size:
            return
        self.count += x.size
        self.total += float(x.sum())
        self.total_sq += float((x * x).sum())
        self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))
        take = min(x.size, SAMPLE_PER_UPDATE)
        self.samples.append(self.rng.choice(x, take, replace=False) if take < x.size else x)

    def row(self, prefix: str) -> dict:
        if not self.count:
            return {}
        mean = self.total / self.count
        q1, q2, q3 = np.quantile(np.concatenate(self.samples), [0.25, 0.5, 0.75])
        return {f"{prefix}_min": self.low, f"{prefix}_q1": q1, f"{prefix}_median": q2,
                f"{prefix}_q3": q3, f"{prefix}_max": self.high, f"{prefix}_mean": mean,
                f"{prefix}_std": math.sqrt(max(self.total_sq / self.count - mean * mean, 0.0))}


class ClipRatio:
    """The share of values whose magnitude exceeds a quantizer's scale (saturated)."""

    def __init__(self, scale: float | None):
        self.scale, self.clipped, self.count = scale, 0, 0

    def update(self, x: np.ndarray) -> None:
        if self.scale is not None:
            self.clipped += int((np.abs(x) > self.scale).sum())
            self.count += x.size

    @property
    def ratio(self) -> float | None:
        return self.clipped / self.count if self.count else None
