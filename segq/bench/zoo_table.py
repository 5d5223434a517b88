"""The model-zoo table: params, FLOPs and Paddle Inference (oneDNN) FP32 and INT8 latency of
every network, from its CamVid config (``tools/model_zoo_table.py``).

Weights are random (latency and FLOPs do not depend on them): BatchNorm statistics from two
random batches, then fake quant (the config's ``quant`` section or the defaults) whose
activation scales have seen two more. FLOPs are paddle.flops' count at batch 1
(multiply-accumulates of convs/linears plus the other ops it counts). Latency is batch 1 at
360x480 (CamVid), exported with a fixed input shape, median and p90 of ``runs`` timed runs
after ``warmup`` untimed ones, FP32 and INT8 of one network measured one after the other
in the same process; "INT8 fast" is the INT8 export with ``argmax_before_resize``. The
mIoU columns come from the JSON files ``tools/compare_int8.py --result_json`` writes,
matched to a zoo config by the model section.
"""
from __future__ import annotations

import csv
import glob
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLUMNS = ["model", "backbone", "config", "params_m", "gflops_512x512", "gflops_360x480",
           "fp32_ms", "fp32_p90_ms", "int8_ms", "int8_p90_ms", "speedup", "int8_fast_ms",
           "fp32_miou", "int8_miou"]
SHAPE = [1, 3, 360, 480]


def architecture_names(cfg) -> tuple[str, str]:
    model = cfg.model.kwargs()
    backbone = model.get("backbone", {})
    name = backbone.get("type", "-") if isinstance(backbone, dict) else "-"
    if isinstance(backbone, dict) and "output_stride" in backbone:
        name += f" (OS{backbone['output_stride']})"
    return cfg.model.type, name


def table_cell(value) -> str:
    """A table cell: a dash for a column not measured yet."""
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) and value < 1 else str(value)


def measured_columns(measured: list[dict], model_section: dict,
                     quant_section: dict | None = None) -> dict:
    """fp32_miou / int8_miou of the comparison run whose model section is this config's (the
    FP32 dygraph and the Paddle Inference INT8 rows). A QAT config (``quant_section`` given)
    only takes a run that recorded the same quant section: its INT8 model is its own."""
    model_section = json.loads(json.dumps(model_section))  # tuples -> lists, as in the files
    for run in measured:
        if run.get("model_config") != model_section:
            continue
        if quant_section is not None and run.get("quant_config") != quant_section:
            continue
        rows = {(r["stage"], r["precision"]): r for r in run["rows"]}
        return {"fp32_miou": rows.get(("dygraph", "fp32"), {}).get("miou"),
                "int8_miou": rows.get(("Paddle Inference oneDNN", "int8"), {}).get("miou")}
    return {}


def zoo_configs(patterns: list[str] | None) -> list[str]:
    """The configs matched by ``patterns``; by default the zoo's CamVid configs, without the
    QAT ones (configs/quant), which share their FP32 network's model section."""
    default = patterns is None
    paths = sorted({f for pattern in (patterns or ["configs/*/*_camvid_*.yml"])
                    for f in glob.glob(pattern)
                    if not default or Path(f).parent.name != "quant"})
    if not paths:
        raise FileNotFoundError(f"no config matches {patterns}")
    return paths


def random_weight_latencies(cfg, work_dir: Path, threads: int, warmup: int, runs: int):
    """FP32, INT8 and INT8-argmax-before-resize latency stats of the config's network with
    random weights, measured one after the other."""
    from ..deploy.paddle_inference import PaddleInferenceModel
    from .latency import measure_latency
    from .random_exports import EXPORT_NAMES, random_weight_exports

    dirs = random_weight_exports(cfg, work_dir, SHAPE)
    batch = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    stats = {}
    for name in EXPORT_NAMES:
        backend = PaddleInferenceModel(dirs[name], cpu_threads=threads, int8=name != "fp32")
        stats[name] = measure_latency(backend.run, batch, warmup, runs)
        del backend
    return stats


@dataclass(frozen=True)
class ZooOptions:
    out: str = "docs/model_zoo"          # output path without suffix (.md, .csv, .json)
    threads: int = 2
    warmup: int = 10
    runs: int = 50
    title: str = "Model zoo"
    results: tuple[str, ...] = ("docs/results/*.json",)


def zoo_rows(paths: list[str], opts: ZooOptions) -> list[dict]:
    """One row per distinct network (and quant section) among the configs ``paths``."""
    import paddle
    from tqdm import tqdm

    from ..builders import build_model_for
    from ..config import load_config
    from .int8_compare import quant_section

    measured = [json.loads(Path(f).read_text())
                for pattern in opts.results for f in sorted(glob.glob(pattern))]
    rows = []
    seen = set()
    for path in tqdm(paths, desc="models", disable=None):  # a bar on a terminal only
        cfg = load_config(path)
        network = json.dumps([cfg.model.to_dict(),
                              cfg.quant and cfg.quant.model_dump(mode="json")], sort_keys=True)
        if network in seen:
            continue  # the same network on another schedule: one row per network and quant
        seen.add(network)
        model = build_model_for(cfg)
        model.eval()
        params = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
        flops = {hw: paddle.flops(model, [1, 3, *hw], print_detail=False) / 1e9
                 for hw in ((512, 512), (360, 480))}
        with tempfile.TemporaryDirectory() as tmp:
            lat = random_weight_latencies(cfg, Path(tmp), opts.threads, opts.warmup, opts.runs)
        arch, backbone = architecture_names(cfg)
        known = measured_columns(measured, cfg.model.to_dict(), quant_section(cfg))
        rows.append({"model": arch, "backbone": backbone, "config": path,
                     "params_m": round(params / 1e6, 2),
                     "gflops_512x512": round(flops[(512, 512)], 2),
                     "gflops_360x480": round(flops[(360, 480)], 2),
                     "fp32_ms": round(lat["fp32"].median_ms, 1),
                     "fp32_p90_ms": round(lat["fp32"].p90_ms, 1),
                     "int8_ms": round(lat["int8"].median_ms, 1),
                     "int8_p90_ms": round(lat["int8"].p90_ms, 1),
                     "speedup": round(lat["fp32"].median_ms / lat["int8"].median_ms, 2),
                     "int8_fast_ms": round(lat["int8_fast"].median_ms, 1),
                     "fp32_miou": known.get("fp32_miou"), "int8_miou": known.get("int8_miou")})
    return rows


def write_zoo_table(rows: list[dict], opts: ZooOptions, command: str) -> str:
    """Write ``opts.out`` .csv, .json and .md; returns the Markdown."""
    from ..cpu_runtime import run_environment

    env = run_environment()
    env["threads"] = opts.threads
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
    lines = [
        f"# {opts.title}",
        "",
        f"Generated by `{command}` on {env['cpu']} "
        f"({env['cores']} cores), {opts.threads} threads, paddle {env['paddle']}.",
        "Latency: Paddle Inference with oneDNN, FP32 and INT8 (QAT export), batch 1, "
        f"1x3x360x480 input, median (p90) of {opts.runs} runs after {opts.warmup} warm-up runs; "
        "random weights. Speed-up: FP32 over INT8 median, measured side by side. INT8 fast: "
        "the INT8 export with `--argmax_before_resize`.",
        "GFLOPs: `paddle.flops` at batch 1. mIoU columns: CamVid val (101 images, 360x480) of "
        "the trained FP32 model and of its QAT INT8 export under Paddle Inference "
        "(docs/results.md, docs/results/*.json).",
        "",
        "| model | backbone | params (M) | GFLOPs 512x512 | GFLOPs 360x480 | FP32 ms | "
        "INT8 ms | speed-up | INT8 fast ms | FP32 mIoU | INT8 mIoU | config |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backbone']} | {r['params_m']} | "
                     f"{r['gflops_512x512']} | {r['gflops_360x480']} | "
                     f"{r['fp32_ms']} ({r['fp32_p90_ms']}) | {r['int8_ms']} ({r['int8_p90_ms']}) | "
                     f"{r['speedup']}x | {r['int8_fast_ms']} | {table_cell(r['fp32_miou'])} | "
                     f"{table_cell(r['int8_miou'])} | `{r['config']}` |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)
