"""FP32 against QAT INT8 for one trained network, measured side by side in one run: mIoU of
the dygraph models and of their Paddle Inference exports (oneDNN FP32 / INT8), latency at
batch 1 and model size. The INT8/FP32 ratios come from the same run, on the same thread count.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..builders import build_model_for
from ..checkpoint import iteration_checkpoints
from ..config import SegConfig
from ..cpu_runtime import run_environment
from ..deploy.deploy_file import MODEL_FILE, PARAMS_FILE
from ..deploy.workflows import evaluate_backend, export_model
from ..engine.workflows import evaluate_model
from ..quant.qat import build_qat_model, export_qat_model

logger = logging.getLogger("segq")


@dataclass(frozen=True)
class CompareRow:
    model: str
    stage: str                # "dygraph" (the training-time model) or "Paddle Inference"
    precision: str            # fp32 | int8 (fake quant, for the dygraph QAT model)
    miou: float
    latency_ms: float | None  # median at batch 1; None for dygraph rows
    p90_ms: float | None
    size_mb: float | None     # model + params files of the export
    speedup: float | None     # against the Paddle Inference FP32 row of this run


def compare_fp32_int8(cfg: SegConfig, fp32_weights: str, qat_weights: str, work_dir: str,
                      input_shape: list[int], cpu_threads: int = 2, num_workers: int = 0,
                      latency_runs: int = 50) -> list[CompareRow]:
    """Evaluate and time FP32 and INT8 side by side; exports go to ``work_dir/fp32_infer``
    and ``work_dir/int8_infer``. ``input_shape`` ``[1, C, H, W]`` is the latency input."""
    from ..deploy.paddle_inference import PaddleInferenceModel
    from .latency import files_size_mb, measure_latency

    work = Path(work_dir)
    name = cfg.model.type
    # each model is built once, evaluated in dygraph, then exported
    fp32_model = build_model_for(cfg, fp32_weights)
    qat = build_qat_model(cfg, qat_weights=qat_weights)
    logger.info("FP32 dygraph evaluation")
    fp32 = evaluate_model(cfg, fp32_model, num_workers)
    logger.info("QAT (fake quant) dygraph evaluation")
    qat_result = evaluate_model(cfg, qat.model, num_workers)
    fp32_dir = export_model(cfg, fp32_model, str(work / "fp32_infer"))
    int8_dir = export_qat_model(cfg, qat, str(work / "int8_infer"))
    batch = np.random.default_rng(0).standard_normal(input_shape).astype("float32")
    deployed = {}
    for precision, model_dir in (("fp32", fp32_dir), ("int8", int8_dir)):
        int8 = precision == "int8"
        logger.info(f"Paddle Inference oneDNN {precision} evaluation and latency")
        runner = PaddleInferenceModel(model_dir, cpu_threads=cpu_threads, int8=int8)
        deployed[precision] = (evaluate_backend(cfg, runner, num_workers),
                               measure_latency(runner.run, batch, runs=latency_runs),
                               files_size_mb(Path(model_dir) / f
                                             for f in (MODEL_FILE, PARAMS_FILE)))
    base_ms = deployed["fp32"][1].median_ms
    rows = [CompareRow(name, "dygraph", "fp32", fp32.miou, None, None, None, None),
            CompareRow(name, "dygraph", "int8 (fake quant)", qat_result.miou, None, None, None,
                       None)]
    for precision, (result, lat, size) in deployed.items():
        rows.append(CompareRow(name, "Paddle Inference oneDNN", precision, result.miou,
                               lat.median_ms, lat.p90_ms, size, base_ms / lat.median_ms))
    return rows


def rows_markdown(rows: list[CompareRow], input_shape: list[int], cpu_threads: int) -> str:
    env = run_environment()
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = ["| model | stage | precision | mIoU | latency ms (median) | p90 ms | size MB | "
             "speed-up |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.stage} | {r.precision} | {r.miou:.4f} | "
                     f"{fmt(r.latency_ms, '.1f')} | {fmt(r.p90_ms, '.1f')} | "
                     f"{fmt(r.size_mb, '.2f')} | {fmt(r.speedup, '.2f')} |")
    lines += ["", f"Latency: batch 1, input {'x'.join(map(str, input_shape))}, "
              f"{cpu_threads} threads; {env['cpu']}, {env['cores']} cores, paddle "
              f"{env['paddle']}. Speed-up against Paddle Inference oneDNN FP32 in the same run."]
    return "\n".join(lines)


def quant_section(cfg: SegConfig) -> dict | None:
    """The config's ``quant`` section as JSON data, as comparison files record it and
    tools/model_zoo_table.py matches it."""
    return cfg.quant.model_dump(mode="json") if cfg.quant is not None else None


def write_rows(rows: list[CompareRow], path: str | Path, cfg: SegConfig | None = None,
               command: str | None = None) -> None:
    """JSON with the rows, the environment, the command and the config's model and quant
    sections (by which tools/model_zoo_table.py finds the zoo row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "command": command, "environment": run_environment(),
        "model_config": cfg.model.to_dict() if cfg is not None else None,
        "quant_config": quant_section(cfg) if cfg is not None else None,
        "rows": [asdict(r) for r in rows]}, indent=2))


def qat_run_summary(qat_weights: str | Path) -> str | None:
    """"QAT: N iterations (best at iter K), wall time M min" for a checkpoint inside a
    training run directory (``run/best_model/model.pdparams``), or None."""
    ckpt = Path(qat_weights).parent
    checkpoints = iteration_checkpoints(ckpt.parent)
    if not (ckpt / "state.json").is_file() or not checkpoints:
        return None
    best = json.loads((ckpt / "state.json").read_text())
    last = json.loads((checkpoints[-1] / "state.json").read_text())
    wall = last.get("extra", {}).get("wall_time_s")
    return (f"QAT: {last['iteration']} iterations (checkpoint at iter {best['iteration']}), "
            f"wall time {wall / 60:.1f} min including evaluations" if wall else
            f"QAT: {last['iteration']} iterations (checkpoint at iter {best['iteration']})")


def compare_section(title: str, command: str, qat_weights: str | Path, table: str) -> str:
    """The Markdown section of one comparison: title, the command, the QAT run, the table."""
    summary = qat_run_summary(qat_weights)
    lines = [f"## {title}", "", f"- table written by: `{command}`"]
    if summary:
        lines.append(f"- {summary}")
    return "\n".join(lines) + "\n\n" + table
