"""Training throughput at 1..N data-parallel ranks on this machine: ``train.py`` launched
through ``paddle.distributed.launch`` with the same per-rank batch (weak scaling) and the
cores split evenly between the ranks, the step time read from rank 0's log."""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_STEP = re.compile(r"\[TRAIN\] iter: (\d+)/\d+, .*batch_cost: ([0-9.]+)s")


@dataclass
class Throughput:
    ranks: int
    threads_per_rank: int
    batch_per_rank: int
    seconds_per_iter: float      # median over the timed iterations, rank 0's view
    spread: float                # p90 / median of those step times

    @property
    def images_per_second(self) -> float:
        return self.ranks * self.batch_per_rank / self.seconds_per_iter

    @property
    def images_per_second_per_rank(self) -> float:
        return self.images_per_second / self.ranks


def step_times(log: str, warmup: int) -> list[float]:
    """The per-iteration ``batch_cost`` values (``--log_iters 1``) after ``warmup`` iters."""
    return [float(cost) for it, cost in _STEP.findall(log) if int(it) > warmup]


def measure(config: str, ranks: int, batch_per_rank: int, iters: int, warmup: int,
            cores: int, extra_opts: list[str]) -> Throughput:
    threads = max(1, cores // ranks)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="segq_dp_") as tmp:
        launch = ([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
                   str(ranks), "--log_dir", f"{tmp}/log"] if ranks > 1 else [sys.executable])
        cmd = [*launch, "train.py", "--config", config, "--iters", str(iters),
               "--batch_size", str(batch_per_rank), "--log_iters", "1", "--save_interval",
               str(iters), "--save_dir", f"{tmp}/run", "--num_workers", "0",
               *(["--opts", *extra_opts] if extra_opts else [])]
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                           check=False)
        log = r.stdout + r.stderr
        if ranks > 1 and Path(f"{tmp}/log/workerlog.0").exists():
            log += Path(f"{tmp}/log/workerlog.0").read_text()
        if r.returncode != 0:
            raise ValueError(f"{ranks} rank(s) failed (exit {r.returncode}):\n{log[-2000:]}")
    times = step_times(log, warmup)
    if len(times) < 3:
        raise ValueError(f"{ranks} rank(s): only {len(times)} timed iterations in the log")
    median = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    return Throughput(ranks, threads, batch_per_rank, median, p90 / median)


def markdown(rows: list[Throughput]) -> str:
    base = rows[0].images_per_second
    lines = [("| ranks | threads / rank | batch / rank | s / iter (median) | p90 / median "
              "| images/s | images/s per rank | vs 1 rank |"), "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.ranks} | {r.threads_per_rank} | {r.batch_per_rank} | "
                     f"{r.seconds_per_iter:.3f} | {r.spread:.2f} | {r.images_per_second:.2f} | "
                     f"{r.images_per_second_per_rank:.2f} | "
                     f"{r.images_per_second / base:.2f}x |")
    return "\n".join(lines)
