"""When is post-training quantization enough? One network's FP32 export against every PTQ
variant segq runs (each algorithm, bias correction, calibration set sizes, weight-only) and,
if given, a QAT export, all evaluated and timed under Paddle Inference in one run.

Every row is a deployed model: val mIoU through Paddle Inference (oneDNN; INT8 for INT8
exports), batch-1 latency (median and p90), file size, calibration time.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..config import SegConfig
from ..deploy.export import ExportOptions
from ..quant.calibration import CalibrationSource
from ..quant.ptq import ALGOS, PTQOptions, ptq

logger = logging.getLogger("segq")


@dataclass
class StudyRow:
    name: str
    precision: str                     # what Paddle Inference runs: fp32 | int8
    miou: float
    median_ms: float
    p90_ms: float
    size_mb: float
    calib_images: int | None = None
    calib_seconds: float | None = None
    speedup: float | None = None       # FP32 median / this median, same run


@dataclass(frozen=True)
class StudyOptions:
    save_dir: str
    input_shape: list[int]             # the latency input [1, C, H, W]; exports take H, W
    calib_num: int = 256
    sizes: tuple[int, ...] = (16, 64)  # smaller calibration sets, tried with the best algo
    batch_size: int = 8
    cpu_threads: int = 2
    latency_runs: int = 30
    qat_dir: str | None = None         # a QAT INT8 export of the same FP32 model
    weight_only: bool = True
    algos: tuple[str, ...] = ALGOS     # the calibration algorithms to compare

    def __post_init__(self):
        unknown = [a for a in self.algos if a not in ALGOS]
        if unknown or not self.algos:
            raise ValueError(f"--algos: expected one or more of {', '.join(ALGOS)}, "
                             f"got {list(self.algos)}")


def _measure(cfg: SegConfig, name: str, model_dir: Path, int8: bool, opts: StudyOptions,
             **extra) -> StudyRow:
    from ..deploy.paddle_inference import PaddleInferenceModel
    from ..deploy.workflows import evaluate_backend
    from .latency import files_size_mb, measure_latency

    runner = PaddleInferenceModel(str(model_dir), cpu_threads=opts.cpu_threads, int8=int8)
    result = evaluate_backend(cfg, runner)
    batch = np.random.default_rng(0).standard_normal(opts.input_shape).astype("float32")
    lat = measure_latency(runner.run, batch, warmup=5, runs=opts.latency_runs)
    size = files_size_mb(Path(model_dir) / f for f in ("model.pdmodel", "model.pdiparams"))
    row = StudyRow(name, "int8" if int8 else "fp32", result.miou, lat.median_ms, lat.p90_ms,
                   size, **extra)
    logger.info(f"{name}: mIoU {row.miou:.4f}, {row.median_ms:.1f} ms, {size:.2f} MB")
    return row


def _ptq_rows(cfg, fp32_weights, opts: StudyOptions, tag: str, ptq_opts: PTQOptions,
              int8: bool = True) -> list[StudyRow]:
    rows = []
    for r in ptq(cfg, fp32_weights, ptq_opts):
        rows.append(_measure(cfg, f"{tag}{r.name}", r.model_dir, int8, opts,
                             calib_images=r.num_images or None,
                             calib_seconds=round(r.calib_seconds, 1)))
    return rows


def run_study(cfg: SegConfig, fp32_weights: str, opts: StudyOptions) -> list[StudyRow]:
    from ..builders import build_model_for
    from ..deploy.workflows import export_model

    save = Path(opts.save_dir)
    shape = [-1, *opts.input_shape[1:]]
    fp32_dir = export_model(cfg, build_model_for(cfg, fp32_weights), str(save / "fp32"),
                            ExportOptions(input_shape=shape))
    rows = [_measure(cfg, "FP32", fp32_dir, False, opts)]
    base = PTQOptions(save_dir="", batch_size=opts.batch_size,
                      export=ExportOptions(input_shape=shape),
                      source=CalibrationSource(calib_num=opts.calib_num))
    algo_rows = []
    for algo in opts.algos:  # one call each: ptq's own --algo all would evaluate them twice
        algo_rows += _ptq_rows(cfg, fp32_weights, opts, "PTQ ",
                               replace(base, save_dir=str(save / f"ptq_{algo}"), algo=algo))
    rows += algo_rows
    best = max(algo_rows, key=lambda r: r.miou).name.removeprefix("PTQ ")
    rows += _ptq_rows(cfg, fp32_weights, opts, "PTQ bias-corrected ",
                      replace(base, save_dir=str(save / f"ptq_{best}_bc"), algo=best,
                              bias_correction=True))
    for n in opts.sizes:
        rows += _ptq_rows(cfg, fp32_weights, opts, f"PTQ {n} images ",
                          replace(base, save_dir=str(save / f"ptq_{best}_{n}"), algo=best,
                                  source=CalibrationSource(calib_num=n)))
    if opts.weight_only:
        rows += _ptq_rows(cfg, fp32_weights, opts, "",
                          replace(base, save_dir=str(save / "weight_only"), weight_only=True),
                          int8=False)
    if opts.qat_dir:
        rows.append(_measure(cfg, "QAT", Path(opts.qat_dir), True, opts))
    for r in rows:
        r.speedup = round(rows[0].median_ms / r.median_ms, 2)
    return rows


def _per_image(row: StudyRow) -> float | None:
    if row.calib_seconds is None or not row.calib_images:
        return None
    return row.calib_seconds / row.calib_images


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def study_markdown(rows: list[StudyRow], title: str, command: str, env: dict,
                   opts: StudyOptions) -> str:
    lines = [f"## {title}", "",
             f"- command: `{command}`",
             f"- machine: {env.get('cpu')}, {env.get('cores')} cores, paddle "
             f"{env.get('paddle')}; Paddle Inference oneDNN, {opts.cpu_threads} threads, "
             f"latency input {opts.input_shape} (median and p90 of {opts.latency_runs} runs)",
             "- calibration: the config's train split through the deploy transforms; "
             "mIoU on the val split", "",
             "| model | runs as | val mIoU | vs FP32 | median ms | p90 ms | speed-up | MB "
             "| calib images | calib s | s per image |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    fp32 = rows[0].miou
    for r in rows:
        lines.append(
            f"| {r.name} | {r.precision} | {r.miou:.4f} | {r.miou - fp32:+.4f} | "
            f"{r.median_ms:.1f} | {r.p90_ms:.1f} | {r.speedup:.2f}x | {r.size_mb:.2f} | "
            f"{r.calib_images or '-'} | {_fmt(r.calib_seconds, 1)} | "
            f"{_fmt(_per_image(r), 2)} |")
    return "\n".join(lines) + "\n"


def write_study(rows: list[StudyRow], path: str | Path, command: str, env: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"command": command, "environment": env,
                                      "rows": [asdict(r) for r in rows]}, indent=2))
