"""The quantization debug report (slim/quant_report.py): a quantized model against its FP32
original, layer by layer, on N validation images.

Both models are exported programs run by Paddle's static executor (the INT8 one computes its
quantize/dequantize ops in float, i.e. exactly the fake-quantized model): every layer's
output is compared cumulatively (INT8 model against FP32 model) and in isolation (that layer
alone quantized, on its FP32 input). Writes, into a new ``save_dir``:

- ``layers.csv``: one row per conv / matmul layer in network order;
- ``quant_params.csv``: every quantized tensor's scales, zero point and bits;
- ``samples.csv``: per image, the output cosine and the mIoU of both models;
- ``report.md``: the worst layers first, with what to try; ``cosine.png``: cosine along depth.
"""
from __future__ import annotations

import csv
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...config import SegConfig
from ...metrics import EvalResult, confusion_matrix
from .program import ExportedProgram, ProgramLayer, check_int8_export
from .single_layer import isolated_output, run_layer
from .tensor_stats import Agreement, ClipRatio, Summary, cosine

logger = logging.getLogger("segq")

LAYER_COLUMNS = (
    "position", "layer", "op", "quantized", "cos_cumulative", "snr_db_cumulative",
    "cos_isolated", "snr_db_isolated", "clip_ratio",
    "act_scale", "act_zero_point", "act_bits", "weight_channels", "weight_scale_min",
    "weight_scale_max", "weight_zero_point", "weight_bits")
STAT_PREFIXES = ("in_fp32", "in_dequantized", "out_fp32", "out_int8")
STAT_KEYS = ("min", "q1", "median", "q3", "max", "mean", "std")


@dataclass
class LayerAccumulator:
    layer: ProgramLayer
    name: str
    cumulative: Agreement = field(default_factory=Agreement)
    isolated: Agreement = field(default_factory=Agreement)
    stats: dict = field(default_factory=lambda: {p: Summary() for p in STAT_PREFIXES})
    clip: ClipRatio = None

    def __post_init__(self):
        self.clip = ClipRatio(self.layer.act_scale)

    def row(self) -> dict:
        l = self.layer
        row = {"position": l.position, "layer": self.name, "op": l.op_type,
               "quantized": l.quantized,
               "cos_cumulative": self.cumulative.cosine, "snr_db_cumulative":
               self.cumulative.snr_db, "cos_isolated": self.isolated.cosine,
               "snr_db_isolated": self.isolated.snr_db, "clip_ratio": self.clip.ratio,
               "act_scale": l.act_scale, "act_zero_point": 0 if l.act_scale else None,
               "act_bits": l.act_bits,
               "weight_channels": l.weight_scales.size if l.quantized else None,
               "weight_scale_min": float(l.weight_scales.min()) if l.quantized else None,
               "weight_scale_max": float(l.weight_scales.max()) if l.quantized else None,
               "weight_zero_point": 0 if l.quantized else None, "weight_bits": l.weight_bits}
        for prefix, summary in self.stats.items():
            row.update(summary.row(prefix))
        return row


@dataclass
class SampleRow:
    index: int
    image: str
    output_cosine: float               # fake-quant program's scores against FP32's
    pixel_agreement: float             # share of pixels with FP32's class
    miou_fp32: float
    miou_int8: float                   # the fake-quant program
    miou_deployed: float | None = None          # Paddle Inference oneDNN INT8
    pixel_agreement_deployed: float | None = None


@dataclass
class QuantReport:
    save_dir: Path
    layers: list[dict]
    samples: list[SampleRow]
    miou_fp32: float
    miou_int8: float
    output_cosine: float
    seconds: float
    miou_deployed: float | None = None  # oneDNN INT8 on the same images
    # with --profile: runtime -> bench.profile.OpComparison rows (FP32 against INT8 per op)
    speed: dict[str, list] = field(default_factory=dict)


def compare_programs(fp32: ExportedProgram, int8: ExportedProgram, names: list[str],
                     samples, num_classes: int, ignore_index: int = 255, deployed=None):
    """Per-layer accumulators and per-image rows over ``samples`` (dicts with ``img``,
    ``label``/``ori_label``, ``trans_info``); ``deployed`` (``sample -> label map``, the
    INT8 export run by Paddle Inference) adds the deployed model's columns."""
    from ...deploy.postprocess import label_map

    if len(fp32.layers) != len(int8.layers):
        raise ValueError(f"{int8.model_dir} has {len(int8.layers)} conv/matmul layers but the "
                         f"FP32 export {fp32.model_dir} has {len(fp32.layers)}: not the "
                         f"same network")
    accs = [LayerAccumulator(q, n) for q, n in zip(int8.layers, names)]
    weights = [(fp32.float_weight(f), int8.float_weight(q))
               for f, q in zip(fp32.layers, int8.layers)]
    fp32_fetch = [l.output for l in fp32.layers] + [l.raw_input for l in fp32.layers]
    int8_fetch = [l.output for l in int8.layers] + [l.input_read for l in int8.layers]
    rows, conf_fp32, conf_int8, conf_deployed = [], 0, 0, 0
    total = Agreement()
    n = len(fp32.layers)
    for i, sample in enumerate(samples):
        batch = sample["img"][None]
        ref = fp32.run(batch, fp32_fetch + [fp32.output])
        test = int8.run(batch, int8_fetch + [int8.output])
        for k, acc in enumerate(accs):
            x_fp32, x_deq = ref[n + k], test[n + k]
            acc.cumulative.update(ref[k], test[k])
            acc.stats["in_fp32"].update(x_fp32)
            acc.stats["in_dequantized"].update(x_deq)
            acc.stats["out_fp32"].update(ref[k])
            acc.stats["out_int8"].update(test[k])
            acc.clip.update(x_fp32)
            w_fp32, w_q = weights[k]
            acc.isolated.update(run_layer(acc.layer, x_fp32, w_fp32),
                                isolated_output(acc.layer, x_fp32, w_q))
        label = sample.get("ori_label", sample["label"])
        pred_fp32 = label_map(ref[-1][0], sample.get("trans_info"))
        pred_int8 = label_map(test[-1][0], sample.get("trans_info"))
        c_fp32 = confusion_matrix(pred_fp32, label, num_classes, ignore_index)
        c_int8 = confusion_matrix(pred_int8, label, num_classes, ignore_index)
        conf_fp32, conf_int8 = conf_fp32 + c_fp32, conf_int8 + c_int8
        total.update(ref[-1], test[-1])
        row = SampleRow(i, str(sample.get("img_path", i)), cosine(ref[-1], test[-1]),
                        float((pred_fp32 == pred_int8).mean()),
                        EvalResult.from_confusion(c_fp32, 1).miou,
                        EvalResult.from_confusion(c_int8, 1).miou)
        if deployed is not None:
            pred = deployed(sample)
            c = confusion_matrix(pred, label, num_classes, ignore_index)
            conf_deployed = conf_deployed + c
            row.miou_deployed = EvalResult.from_confusion(c, 1).miou
            row.pixel_agreement_deployed = float((pred_fp32 == pred).mean())
        rows.append(row)
    if not rows:
        raise ValueError("no validation images to compare on")
    miou_deployed = (EvalResult.from_confusion(conf_deployed, len(rows)).miou
                     if deployed is not None else None)
    return (accs, rows, EvalResult.from_confusion(conf_fp32, len(rows)).miou,
            EvalResult.from_confusion(conf_int8, len(rows)).miou, total.cosine, miou_deployed)


def quant_report(cfg: SegConfig, fp32_weights: str, save_dir: str,
                 qat_weights: str | None = None, model_dir: str | None = None,
                 num_images: int = 32, profile: Sequence[str] = (),
                 cpu_threads: int = 2) -> QuantReport:
    """Compare the INT8 model (a QAT checkpoint, or a PTQ / QAT export) with the FP32 one
    on the first ``num_images`` val images and write the report files into ``save_dir``;
    with ``profile`` (runtimes among PROFILE_BACKENDS), also the time per op type of both
    under each runtime."""
    from ...builders import build_qat_model
    from ...data.loader import build_eval_loader
    from ...deploy.workflows import export_model
    from ..ptq import check_save_dir
    from ..qat import export_qat_model
    from .layer_names import fp32_model_and_val_set, layer_call_order, name_program_layers

    if (qat_weights is None) == (model_dir is None):
        raise ValueError("give the quantized model as --model_path (a QAT checkpoint) or as "
                         "--model_dir (a PTQ or QAT export), not both or neither")
    if not fp32_weights:
        raise ValueError("--fp32_model: give the FP32 weights the INT8 model came from")
    if num_images < 1:
        raise ValueError(f"--num_images must be >= 1, got {num_images}")
    unknown = sorted(set(profile) - set(PROFILE_BACKENDS))
    if unknown:
        raise ValueError(f"--profile: expected runtimes among {', '.join(PROFILE_BACKENDS)}, "
                         f"got {', '.join(unknown)}")
    save = Path(save_dir)
    check_save_dir(save)
    if model_dir is not None:
        check_int8_export(model_dir)
    t0 = time.perf_counter()
    model, dataset = fp32_model_and_val_set(cfg, fp32_weights)
    work = save.with_name(save.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    try:
        fp32 = ExportedProgram(export_model(cfg, model, work / "fp32"))
        qat_model = build_qat_model(cfg, qat_weights=qat_weights) if qat_weights else None
        if qat_model is not None:
            model_dir = export_qat_model(cfg, qat_model, work / "int8")
        int8 = ExportedProgram(model_dir, float_source=fp32)
        samples = []
        for sample in build_eval_loader(dataset):
            samples.append(sample)
            if len(samples) == num_images:
                break
        names = name_program_layers(int8.layers, layer_call_order(
            model, [1, *samples[0]["img"].shape]), model_dir)
        logger.info(f"comparing {sum(l.quantized for l in int8.layers)} quantized of "
                    f"{len(int8.layers)} layers on {len(samples)} val images")
        accs, rows, miou_fp32, miou_int8, out_cos, miou_deployed = compare_programs(
            fp32, int8, names, _progress(samples), dataset.num_classes, dataset.ignore_index,
            deployed=_deployed_label_fn(model_dir, cpu_threads))
        result = QuantReport(save, [a.row() for a in accs], rows, miou_fp32, miou_int8,
                             out_cos, time.perf_counter() - t0, miou_deployed)
        if profile:
            dirs = (fp32.model_dir, Path(model_dir))
            if set(profile) - {"paddle"}:
                dirs = _onnx_exports(cfg, model, qat_model, Path(model_dir), samples, work)
            result.speed = profile_speed(*dirs, samples[0]["img"][None], profile, cpu_threads)
        out = work / "report"
        out.mkdir()
        write_report_files(result, int8, names, out, model_dir)
        if save.exists():
            save.rmdir()  # check_save_dir let an empty directory through
        out.replace(save)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _deployed_label_fn(model_dir, cpu_threads: int):
    """``sample -> label map`` of the INT8 export under Paddle Inference oneDNN INT8."""
    from ...deploy.paddle_inference import PaddleInferenceModel
    from ...deploy.workflows import backend_label_fn

    return backend_label_fn(PaddleInferenceModel(model_dir, use_mkldnn=True, int8=True,
                                                 cpu_threads=cpu_threads))


PROFILE_BACKENDS = ("paddle", "onnxruntime", "openvino")
RUNTIME_NAMES = {"paddle": "Paddle Inference oneDNN", "onnxruntime": "ONNX Runtime",
                 "openvino": "OpenVINO"}


def _onnx_exports(cfg: SegConfig, model, qat_model, int8_dir: Path, samples: list,
                  work: Path) -> tuple[Path, Path]:
    """FP32 and INT8 exports with the val images' fixed input size and their ONNX files (the
    INT8 one in ONNX Runtime's layout, calibrated on the report's first images), in ``work``:
    a user's export is copied, not changed."""
    from ...deploy.export import ExportOptions
    from ...deploy.onnx_export import export_onnx
    from ...deploy.workflows import export_model
    from ..qat import export_qat_model

    options = ExportOptions(input_shape=[1, *samples[0]["img"].shape])
    fp32_dir = export_model(cfg, model, work / "fp32_onnx", options)
    if qat_model is not None:
        int8_onnx = export_qat_model(cfg, qat_model, work / "int8_onnx", options)
    else:
        int8_onnx = work / "int8_onnx"
        shutil.copytree(int8_dir, int8_onnx)
    export_onnx(fp32_dir)
    export_onnx(int8_onnx, calib_batches=[s["img"][None] for s in samples[:8]])
    return fp32_dir, int8_onnx


def profile_speed(fp32_dir: Path, int8_dir: Path, batch: np.ndarray,
                  backends: Sequence[str] = ("paddle",), cpu_threads: int = 2,
                  runs: int = 30) -> dict[str, list]:
    """Time per op type of the FP32 and the INT8 export under each runtime in ``backends``
    (the ONNX ones read the exports' ONNX files)."""
    from ...bench.profile import (compare_op_times, onnx_file_of, profile_onnxruntime,
                                  profile_openvino, profile_paddle)

    speed = {}
    for backend in backends:
        if backend == "paddle":
            fp32, int8 = (profile_paddle(d, batch, d == int8_dir, cpu_threads, runs)
                          for d in (fp32_dir, int8_dir))
        else:
            run = profile_onnxruntime if backend == "onnxruntime" else profile_openvino
            fp32, int8 = (run(onnx_file_of(d), batch, cpu_threads, runs)
                          for d in (fp32_dir, int8_dir))
        speed[backend] = compare_op_times(list(fp32), list(int8))
    return speed


def _progress(samples):
    from tqdm import tqdm

    return tqdm(samples, desc="compare", unit="img", leave=False, disable=None)


# ---------------------------------------------------------------------------- output files
def write_report_files(r: QuantReport, int8: ExportedProgram, names: list[str], out: Path,
                       model_dir) -> None:
    stat_columns = [f"{p}_{k}" for p in STAT_PREFIXES for k in STAT_KEYS]
    _write_csv(out / "layers.csv", list(LAYER_COLUMNS) + stat_columns, r.layers)
    _write_csv(out / "quant_params.csv",
               ["tensor", "kind", "layer", "bits", "zero_point", "num_scales", "scale_min",
                "scale_max", "scales"], quant_param_rows(int8, names))
    _write_csv(out / "samples.csv", list(SampleRow.__dataclass_fields__),
               [vars(s) for s in r.samples])
    plot_cosine(r.layers, out / "cosine.png")
    text = report_markdown(r, model_dir)
    if r.speed:
        from ...bench.profile import op_comparison_markdown

        _write_csv(out / "speed.csv",
                   ["runtime", "op", "fp32_ms", "int8_ms", "slower", "conversion"],
                   [{"runtime": backend, "op": s.op, "fp32_ms": s.fp32_ms, "int8_ms": s.int8_ms,
                     "slower": s.slower, "conversion": s.conversion}
                    for backend, rows in r.speed.items() for s in rows])
        for backend, rows in r.speed.items():
            text += (f"\n\n## Speed per op type ({RUNTIME_NAMES[backend]}, batch 1, one val "
                     f"image)\n\n" + op_comparison_markdown(rows))
    (out / "report.md").write_text(text + "\n")


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def quant_param_rows(int8: ExportedProgram, names: list[str]) -> list[dict]:
    rows = []
    for layer, name in zip(int8.layers, names):
        if layer.act_scale is not None:
            rows.append({"tensor": layer.raw_input, "kind": "activation", "layer": name,
                         "bits": layer.act_bits, "zero_point": 0, "num_scales": 1,
                         "scale_min": layer.act_scale, "scale_max": layer.act_scale,
                         "scales": f"{layer.act_scale:.6g}"})
        if layer.quantized:
            s = layer.weight_scales
            rows.append({"tensor": layer.weight, "kind": "weight", "layer": name,
                         "bits": layer.weight_bits, "zero_point": 0, "num_scales": s.size,
                         "scale_min": float(s.min()), "scale_max": float(s.max()),
                         "scales": ";".join(f"{v:.6g}" for v in s)})
    return rows


def plot_cosine(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["position"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(x, [r["cos_cumulative"] for r in rows], marker=".", label="cumulative (INT8 model)")
    ax.plot(x, [r["cos_isolated"] for r in rows], marker=".", label="isolated (layer alone)")
    ax.set_xlabel("layer (network order)")
    ax.set_ylabel("output cosine to FP32")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def advice(row: dict) -> str:
    """What to try for one layer, from its row."""
    tips = []
    clip = row.get("clip_ratio")
    if clip is not None and clip > 1e-3:
        tips.append(f"its input scale saturates {clip:.2%} of the values: a calibration that "
                    f"keeps more range (abs_max, or hist with a higher --hist_percent)")
    smin, smax = row.get("weight_scale_min"), row.get("weight_scale_max")
    if smin and smax and row.get("weight_channels") == 1:
        tips.append("one weight scale for all channels: weight_quantize_type "
                    "channel_wise_abs_max")
    elif smin is not None and smin > 0 and smax / smin > 100:
        tips.append(f"weight scales span {smax / smin:.0f}x across channels")
    if row["cos_isolated"] < 0.99:
        tips.append("loses accuracy on its own: keep it in float (quant.skip_layers, "
                    "slim/quant_fallback.py finds the fewest) or fine-tune with QAT")
    elif row["cos_cumulative"] < 0.99:
        tips.append("fine on its own (isolated cosine "
                    f"{row['cos_isolated']:.4f}): the error comes from the layers before it")
    if row["op"] == "depthwise_conv2d" and row["cos_isolated"] < 0.999:
        tips.append("depthwise convs have few weights per channel and quantize poorly")
    return "; ".join(tips) or "-"


def _deployed_text(r: QuantReport) -> str:
    if r.miou_deployed is None:
        return "the deployed model was not run"
    return (f"{r.miou_deployed:.4f} ({r.miou_deployed - r.miou_fp32:+.4f}) deployed under "
            f"Paddle Inference oneDNN INT8")


def report_markdown(r: QuantReport, model_dir, top: int = 10) -> str:
    quantized = [row for row in r.layers if row["quantized"]]
    worst = sorted(quantized, key=lambda row: row["cos_isolated"])[:top]
    lines = [
        "# Quantization report",
        "",
        f"INT8 model `{model_dir}` against its FP32 original on {len(r.samples)} val images "
        f"({r.seconds:.0f} s): mIoU {r.miou_fp32:.4f} FP32 -> {r.miou_int8:.4f} INT8 "
        f"({r.miou_int8 - r.miou_fp32:+.4f}) on these images as the fake-quant program "
        f"computes it (output cosine {r.output_cosine:.5f}), and {_deployed_text(r)}; "
        f"{len(quantized)} of {len(r.layers)} layers quantized.",
        "",
        "The layer columns describe the fake-quant program. When the deployed INT8 model "
        "loses much more than the program, the loss is in how the backend runs the graph "
        "(oneDNN folds BatchNorm, activations and residual additions into its INT8 convs and "
        "requantizes with the scales it reads from the quantize/dequantize pairs), not in "
        "the layers below.",
        "",
        "Cumulative: the layer's output in the INT8 model against the FP32 model's. Isolated: "
        "the layer alone quantized, on its FP32 input (1.0 for a layer kept in float). "
        "Files: layers.csv, quant_params.csv, samples.csv, cosine.png.",
        "",
        f"## The {len(worst)} layers that lose most on their own",
        "",
        "| # | layer | op | isolated cos | cumulative cos | clip ratio | what to try |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in worst:
        clip = row["clip_ratio"]
        lines.append(f"| {row['position']} | {row['layer']} | {row['op']} | "
                     f"{row['cos_isolated']:.5f} | {row['cos_cumulative']:.5f} | "
                     f"{'-' if clip is None else f'{clip:.2e}'} | {advice(row)} |")
    def loss(s: SampleRow) -> float:
        return (s.miou_deployed if s.miou_deployed is not None else s.miou_int8) - s.miou_fp32

    def cell(v) -> str:
        return "-" if v is None else f"{v:.4f}"

    lines += ["", "## Images INT8 hurts most", "",
              "| image | output cos | pixels as FP32 | mIoU FP32 | mIoU INT8 program | "
              "mIoU INT8 deployed | pixels as FP32, deployed |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {s.image} | {s.output_cosine:.5f} | {s.pixel_agreement:.4f} | "
              f"{s.miou_fp32:.4f} | {s.miou_int8:.4f} | {cell(s.miou_deployed)} | "
              f"{cell(s.pixel_agreement_deployed)} |" for s in sorted(r.samples, key=loss)[:5]]
    return "\n".join(lines)
