import numpy as np
import pytest

from segq.benchmark import measure_latency


def test_measure_latency_counts_warmup_and_timed_runs():
    calls = []
    stats = measure_latency(lambda b: calls.append(b.shape), np.zeros((1, 3, 4, 4)), warmup=3,
                            runs=7)
    assert len(calls) == 10 and stats.runs == 7
    assert 0 <= stats.median_ms <= stats.p90_ms
    with pytest.raises(ValueError, match="runs must be >= 1"):
        measure_latency(lambda b: None, np.zeros(1), runs=0)
