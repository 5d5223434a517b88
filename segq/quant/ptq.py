"""Post-training quantization as it reads: FP32 weights -> legacy FP32 export -> calibrate
on unlabeled images -> INT8 export (the same directory layout and ``deploy.yaml`` as a QAT
export, so every deployment tool takes it).

The config's ``quant:`` section applies as for QAT (weight quantizer, bits, quantizable layer
types, ``skip_layers``); QAT-only keys set to anything but their default are refused, since
PTQ does not train. Everything is read and checked (config, weights, calibration images,
``--save_dir``) before the first file is written; work happens in ``<save_dir>.tmp`` and is
renamed into place at the end.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import paddle

from ..config import QuantConfig, SegConfig
from ..deploy.export import ExportOptions, ModelWriter
from .calibration import CalibrationSet, CalibrationSource, load_calibration_set

logger = logging.getLogger("segq")

ALGOS = ("abs_max", "avg", "hist", "mse", "KL")
# keys of the quant section that only a training run uses, with their defaults
QAT_ONLY = {"activation_preprocess": None, "distill": None, "moving_rate": 0.9,
            "fuse_conv_bn": False}
RECON_UNAVAILABLE = (
    "reconstruction PTQ (--recon, PaddleSlim's quant_recon_static) does not run on the pinned "
    "paddlepaddle 3.3.1 + paddleslim 2.6.0: it copies the program's dropout ops without their "
    "Mask output, and with those removed it builds its rounding variables with "
    "paddle.nn.functional.sigmoid, which the legacy static graph rejects in 3.3.1 "
    "(tests/test_ptq.py pins both failures); use --algo instead")


@dataclass(frozen=True)
class PTQOptions:
    save_dir: str
    algo: str = "KL"                   # one of ALGOS, or "all" (one sub-directory each)
    hist_percent: float = 0.9999       # the percentile kept by "hist"
    bias_correction: bool = False      # correct the bias shift weight quantization causes
    recon: str | None = None           # "layer" | "region": learned weight rounding
    weight_only: bool = False          # INT8 weights, float inference
    weight_bits: int = 8               # with weight_only
    batch_size: int = 8
    export: ExportOptions = ExportOptions()   # input shape and output op of the exports
    source: CalibrationSource = field(default_factory=CalibrationSource)

    def algos(self) -> list[str]:
        return list(ALGOS) if self.algo == "all" else [self.algo]


@dataclass
class PTQResult:
    name: str                          # the algorithm (or "weight_only")
    model_dir: Path
    calib_seconds: float
    num_images: int
    size_bytes: int
    miou: float | None = None          # Paddle Inference INT8 val mIoU, with --algo all


def check_ptq_request(quant: QuantConfig, opts: PTQOptions) -> None:
    """Refuse settings PTQ cannot honour, naming the key or flag."""
    for key, default in QAT_ONLY.items():
        value = getattr(quant, key)
        if value != default and not (key == "distill" and value is None):
            raise ValueError(f"quant.{key} is {value!r}: it only applies to quantization-aware "
                             f"training (slim/qat_train.py); post-training quantization does "
                             f"not train. Remove it, or set it back to {default!r}")
    if opts.algo != "all" and opts.algo not in ALGOS:
        raise ValueError(f"--algo must be one of {', '.join(ALGOS)} or all, got {opts.algo!r}")
    if not opts.weight_only and quant.activation_bits != quant.weight_bits:
        raise ValueError(f"quant.activation_bits ({quant.activation_bits}) and "
                         f"quant.weight_bits ({quant.weight_bits}) differ: Paddle's "
                         f"post-training quantizer takes only equal bit widths (QAT takes "
                         f"both)")
    if opts.recon is not None:
        raise ValueError(RECON_UNAVAILABLE)
    if opts.weight_only and opts.bias_correction:
        raise ValueError("--weight_only stores INT8 weights and runs in float: it takes no "
                         "calibration, so --bias_correction does not apply")
    if not 0.0 < opts.hist_percent <= 1.0:
        raise ValueError(f"--hist_percent must be in (0, 1], got {opts.hist_percent}")
    if opts.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {opts.batch_size}")
    if opts.weight_only and opts.weight_bits not in (8, 16):
        raise ValueError(f"--weight_bits must be 8 or 16 (what Paddle's weight quantizer "
                         f"stores), got {opts.weight_bits}")


def check_save_dir(save_dir: Path) -> None:
    if save_dir.exists() and (not save_dir.is_dir() or any(save_dir.iterdir())):
        raise ValueError(f"--save_dir {save_dir} already exists and is not empty: give a new "
                         f"one (a PTQ run never replaces another)")


def skipped_weight_names(model, skipped: list[str]) -> list[str]:
    """The parameter names (as the exported program knows them) of the weights of every
    sublayer kept in float: PaddleSlim skips an op by its weight tensor's name."""
    by_name = dict(model.named_sublayers())
    names = []
    for layer_name in skipped:
        weight = getattr(by_name[layer_name], "weight", None)
        if weight is not None and getattr(weight, "name", None):
            names.append(weight.name)
    return names


def _quant_section(quant: QuantConfig, opts: PTQOptions, name: str, skipped: list[str],
                   calib: CalibrationSet | None, seconds: float) -> dict:
    section = {"method": "weight_only" if opts.weight_only else "ptq",
               # PaddleSlim's weight-only quantizer is always per channel
               "weight_quantize_type": "channel_wise_abs_max" if opts.weight_only
               else quant.weight_quantize_type,
               "weight_bits": opts.weight_bits if opts.weight_only else quant.weight_bits,
               "quantizable_layer_type": list(quant.quantizable_layer_type),
               "skipped_layers": list(skipped),
               "weights_stored_as": "int8"}
    if opts.weight_only:
        section["activations"] = "float32"
        return section
    section.update(
        algo=name, activation_bits=quant.activation_bits, bias_correction=opts.bias_correction,
        **({"hist_percent": opts.hist_percent} if name == "hist" else {}),
        calibration={"source": calib.source, "num_images": len(calib),
                     "batch_size": opts.batch_size, "seconds": round(seconds, 2),
                     "seconds_per_image": round(seconds / len(calib), 4),
                     "read_seconds": round(calib.load_seconds, 2)})
    return section


def copy_writer(src: Path, quant_section: dict) -> ModelWriter:
    """An export ``ModelWriter`` that writes the program PaddleSlim already quantized into
    ``src`` and the ``Quant`` section describing it."""
    def save(layer, path_prefix: Path, input_shape) -> None:
        for suffix in (".pdmodel", ".pdiparams"):
            shutil.copyfile(src / f"model{suffix}", f"{path_prefix}{suffix}")
    return ModelWriter(save=save, sections={"Quant": quant_section})


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix in (".pdmodel", ".pdiparams"))


def ptq(cfg: SegConfig, fp32_weights: str, opts: PTQOptions) -> list[PTQResult]:
    """Quantize the config's model from ``fp32_weights`` after training; returns one result
    per algorithm (one directory each under ``save_dir`` with ``--algo all``)."""
    from ..builders import build_model_for, quant_config_of
    from ..deploy.workflows import deploy_transforms, export_model
    from .paddleslim_adapter import quantize_post_training, quantize_weights_only
    from .select import select_skipped

    if not fp32_weights:
        raise ValueError("--model_path: give the trained FP32 weights to quantize")
    quant = quant_config_of(cfg)
    check_ptq_request(quant, opts)
    save_dir = Path(opts.save_dir)
    check_save_dir(save_dir)
    rank, world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
    if rank > 0:
        # PaddleSlim keeps the calibration statistics (maxima, averages, histograms) inside
        # one PostTrainingQuantization object in static mode; merging them across ranks would
        # mean re-implementing its samplers, so under launch rank 0 calibrates on every image
        logger.info(f"rank {rank} of {world}: post-training quantization runs on rank 0; "
                    f"nothing to do here")
        return []
    model = build_model_for(cfg, fp32_weights)
    model.eval()
    skipped = select_skipped(model, quant.skip_layers)
    calib = None
    if not opts.weight_only:
        calib = load_calibration_set(cfg, opts.source, deploy_transforms(cfg))
        logger.info(f"calibration: {len(calib)} images from {calib.source} "
                    f"({calib.load_seconds:.1f} s to read)")
    work = save_dir.with_name(save_dir.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    try:
        fp32_dir = export_model(cfg, model, str(work / "fp32"), opts.export)
        names = ["weight_only"] if opts.weight_only else opts.algos()
        results = []
        for name in names:
            raw = work / f"raw_{name}"
            t0 = time.perf_counter()
            if opts.weight_only:
                quantize_weights_only(fp32_dir, raw, quant, opts.weight_bits)
            else:
                logger.info(f"calibrating with {name} ({calib.num_batches(opts.batch_size)} "
                            f"batches of {opts.batch_size})")
                quantize_post_training(
                    fp32_dir, raw, lambda: calib.batches(opts.batch_size),
                    calib.num_batches(opts.batch_size), quant, name, opts.hist_percent,
                    opts.bias_correction, skip_tensors=skipped_weight_names(model, skipped))
            seconds = time.perf_counter() - t0
            out = work / name
            section = _quant_section(quant, opts, name, skipped, calib, seconds)
            export_model(cfg, model, str(out), opts.export, copy_writer(raw, section))
            shutil.rmtree(raw)
            results.append(PTQResult(name, out, seconds, len(calib) if calib else 0,
                                     _dir_size(out)))
            logger.info(f"{name}: {seconds:.1f} s, {_dir_size(out) / 1e6:.2f} MB")
        shutil.rmtree(fp32_dir)
        results = _publish(work, save_dir, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(results) > 1:
        write_comparison(cfg, results, save_dir)
    return results


def write_comparison(cfg: SegConfig, results: list[PTQResult], save_dir: Path) -> None:
    """``--algo all``: every algorithm's export evaluated under Paddle Inference INT8 on the
    config's val set (when it has one), as ``save_dir/comparison.md`` and ``.json``."""
    import dataclasses
    import json

    from ..deploy.workflows import evaluate_inference_model

    if cfg.val_dataset is not None:
        for r in results:
            r.miou = evaluate_inference_model(cfg, str(r.model_dir), int8=True).miou
    (save_dir / "comparison.md").write_text(report(results) + "\n")
    (save_dir / "comparison.json").write_text(json.dumps(
        [{**dataclasses.asdict(r), "model_dir": str(r.model_dir)} for r in results], indent=2))


def _publish(work: Path, save_dir: Path, results: list[PTQResult]) -> list[PTQResult]:
    """One result: its files become ``save_dir``; several: ``save_dir/<algo>/`` each."""
    if len(results) == 1:
        work_dir = results[0].model_dir
        if save_dir.exists():  # an empty directory the user made (check_save_dir allows it)
            _move_into(work_dir, save_dir)
        else:
            work_dir.replace(save_dir)
        results[0].model_dir = save_dir
        return results
    save_dir.mkdir(parents=True, exist_ok=True)
    for r in results:
        r.model_dir.replace(save_dir / r.name)
        r.model_dir = save_dir / r.name
    return results


def _move_into(src: Path, dst: Path) -> None:
    for f in src.iterdir():
        f.replace(dst / f.name)


def report(results: list[PTQResult]) -> str:
    """A Markdown table of the results (with val mIoU where measured)."""
    if not results:
        return "no model written by this process"
    rows = ["| quantization | calibration s | s / image | size MB | mIoU | model dir |",
            "|---|---|---|---|---|---|"]
    for r in results:
        per_image = f"{r.calib_seconds / r.num_images:.3f}" if r.num_images else "-"
        miou = f"{r.miou:.4f}" if r.miou is not None else "-"
        rows.append(f"| {r.name} | {r.calib_seconds:.1f} | {per_image} | "
                    f"{r.size_bytes / 1e6:.2f} | {miou} | {r.model_dir} |")
    return "\n".join(rows)
