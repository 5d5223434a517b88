from types import SimpleNamespace

import numpy as np
import pytest

from segq.bench import latency as benchmark
from segq.bench.latency import files_size_mb, measure_interleaved, measure_latency


def fake_clock(monkeypatch, durations_s):
    """Replace segq.bench.latency's clock with one that only moves when ``run`` is called: the
    i-th call takes ``durations_s[i]`` seconds. Returns that ``run``."""
    now = [100.0]
    calls = iter(durations_s)
    monkeypatch.setattr(benchmark, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def run(batch):
        now[0] += next(calls)

    return run


def test_measure_latency_times_each_run_after_the_warmup(monkeypatch):
    # 3 slow warm-up calls (excluded), then 5 timed calls of 4, 1, 3, 2 and 10 ms
    run = fake_clock(monkeypatch, [0.5, 0.5, 0.5, 0.004, 0.001, 0.003, 0.002, 0.010])
    stats = measure_latency(run, np.zeros((1, 3, 4, 4)), warmup=3, runs=5)
    assert stats.runs == 5
    assert stats.median_ms == pytest.approx(3.0)
    # numpy's linear percentile of [1, 2, 3, 4, 10]: position 0.9 * 4 = 3.6 -> 4 + 0.6 * 6
    assert stats.p90_ms == pytest.approx(7.6)
    assert stats.mean_ms == pytest.approx(4.0)


def test_measure_latency_counts_warmup_and_timed_runs():
    calls = []
    stats = measure_latency(lambda b: calls.append(b.shape), np.zeros((1, 3, 4, 4)), warmup=3,
                            runs=7)
    assert calls == [(1, 3, 4, 4)] * 10 and stats.runs == 7
    with pytest.raises(ValueError, match="runs must be >= 1"):
        measure_latency(lambda b: None, np.zeros(1), runs=0)


def test_files_size_mb_sums_the_files(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 2**20)
    (tmp_path / "b").write_bytes(b"x" * 2**19)
    assert files_size_mb([tmp_path / "a", str(tmp_path / "b")]) == 1.5


def test_measure_interleaved_takes_the_engines_in_turn():
    calls = []
    engines = [lambda b, k=k: calls.append(k) for k in "abc"]
    stats = measure_interleaved(engines, np.zeros(1), warmup=2, runs=5, rounds=2, settle=1)
    # warm-up of each, then rounds of 1 untimed + 3 and 1 + 2 timed runs per engine, in turn
    assert "".join(calls) == "aabbcc" + "aaaabbbbcccc" + "aaabbbccc"
    assert [s.runs for s in stats] == [5, 5, 5]


def test_measure_interleaved_ranks_engines_by_their_own_time(monkeypatch):
    clock = iter(range(1000))
    monkeypatch.setattr("segq.bench.latency.time.perf_counter", lambda: next(clock) / 1000)
    slow = lambda b: [next(clock) for _ in range(3)]  # noqa: E731
    fast = lambda b: None  # noqa: E731
    s_slow, s_fast = measure_interleaved([slow, fast], np.zeros(1), warmup=0, runs=4, rounds=2,
                                         settle=0)
    assert s_slow.median_ms == pytest.approx(4.0) and s_fast.median_ms == pytest.approx(1.0)


def test_measure_interleaved_settles_a_slow_engine_before_timing_it(monkeypatch):
    # engine "a" runs slow for its first 3 calls after the other engine ran (cold caches)
    calls, now = [], [0.0]
    monkeypatch.setattr("segq.bench.latency.time.perf_counter", lambda: now[0])

    def engine(name):
        def run(b):
            calls.append(name)
            cold = name == "a" and len(calls) > 2 and calls[-4:-1].count("a") < 3 \
                and "b" in calls[-4:-1]
            now[0] += 0.010 * (3 if cold else 1)
        return run

    s_a, s_b = measure_interleaved([engine("a"), engine("b")], np.zeros(1), warmup=2, runs=4,
                                   rounds=2, settle=1, settle_max=10)
    # the cold runs were spent settling: every timed run of "a" is at its warm speed
    assert s_a.median_ms == pytest.approx(10.0) and s_a.p90_ms == pytest.approx(10.0)
    assert calls.count("a") > 2 + 4 + 2  # more untimed runs than the minimum of 1 per round
    # settle_max bounds the untimed runs of an engine that never gets back to speed
    slow = iter([1.0] + [5.0] * 100)
    n = []

    def drifting(b):
        n.append(1)
        now[0] += next(slow) / 1000

    measure_interleaved([drifting], np.zeros(1), warmup=1, runs=2, rounds=2, settle=1,
                        settle_max=3)
    assert len(n) == 1 + 2 * (3 + 1)


def test_measure_interleaved_keeps_every_timed_run_in_order(monkeypatch):
    run = fake_clock(monkeypatch, [0.5, 0.004, 0.001, 0.009])
    stats = measure_latency(run, np.zeros(1), warmup=1, runs=3)
    assert stats.times_ms == pytest.approx((4.0, 1.0, 9.0))
