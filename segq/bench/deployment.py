"""The deployment benchmark: one network's FP32 and INT8 (QAT or PTQ) exports on every backend,
beside the peer post-training INT8 models users would otherwise make from the same FP32 model,
measured in one run: mIoU through the deployed model, batch-1 latency, throughput at a larger
batch, file size, and speed-up against Paddle Inference oneDNN FP32.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from ..builders import build_dataset
from ..config import SegConfig
from ..deploy.backend import Backend
from ..deploy.deploy_file import DeployInfo, load_deploy_info
from ..deploy.onnx_export import export_onnx
from .latency import files_size_mb, measure_interleaved
from .report import BenchRow

logger = logging.getLogger("segq")

PADDLE, ORT, OPENVINO = "Paddle Inference oneDNN", "ONNX Runtime", "OpenVINO"
FP32, QAT = "FP32", "QAT (segq)"
PTQ_ORT, PTQ_NNCF = "PTQ: ORT quantize_static", "PTQ: NNCF"
# ORT's default also quantizes the logits before the arg max (segq.bench.argmax_ties)
PTQ_ORT_FLOAT_LOGITS = PTQ_ORT + ", float logits"


@dataclass(frozen=True)
class BenchSettings:
    cpu_threads: int = 2
    latency_runs: int = 50          # timed batch-1 runs (after warm-up)
    warmup: int = 10
    latency_rounds: int = 5         # the timed runs of all engines are taken in turn, in rounds
    throughput_batch: int = 8       # 0: throughput not measured
    throughput_runs: int = 10
    calib_images: int = 32          # train images for the peer PTQ calibration
    ort_layout_images: int = 8      # the first of them calibrate segq INT8's ONNX layout
    peers: bool = True              # add the ORT quantize_static and NNCF rows
    num_workers: int = 0            # data loading for the mIoU evaluation
    evaluate: bool = True           # False: no mIoU (random-weight exports: speed only)

    def __post_init__(self):
        for name in ("cpu_threads", "latency_runs", "latency_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Candidate:
    backend: str
    precision: str
    method: str
    make: Callable[[], Backend]     # built when its mIoU is measured; all stay for the timing
    files: tuple[Path, ...]         # what a user ships: the size column


def _fixed_hw(deploy: DeployInfo) -> tuple[int, int]:
    shape = deploy.input_shape
    if shape is None or shape[2] == -1 or shape[3] == -1 or shape[0] != -1:
        raise ValueError(f"{deploy.deploy_file}: the benchmark needs an export with a dynamic "
                         f"batch and a fixed H, W (ONNX needs them fixed; throughput needs "
                         f"batches), got Deploy.input_shape {shape}: export with "
                         f"--input_shape -1 3 H W")
    return shape[2], shape[3]


def calibration_batches(cfg: SegConfig, count: int, hw: tuple[int, int]) -> list[np.ndarray]:
    """``count`` train images, evenly spread over the split, preprocessed as at deployment
    (the val transforms), as ``[1, C, H, W]`` batches. The val split is what is scored, so
    it is not used to calibrate."""
    section = cfg.train_dataset.to_dict()
    section["transforms"] = (cfg.val_dataset.to_dict().get("transforms") or [])
    dataset = build_dataset(type(cfg.train_dataset)(**section), "train_dataset")
    picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    batches = []
    for i in dict.fromkeys(picks.tolist()):
        img = np.asarray(dataset[i]["img"], dtype=np.float32)
        if tuple(img.shape[1:]) != hw:
            raise ValueError(f"train image {i} preprocesses to {list(img.shape[1:])}, the "
                             f"export takes H, W {list(hw)}: add a Resize to the val "
                             f"transforms (or export.transforms)")
        batches.append(img[None])
    return batches


def method_of(deploy: DeployInfo) -> str:
    """How the export was made: FP32, segq's QAT, or segq's PTQ with its algorithm."""
    method = FP32
    if deploy.is_int8:
        quant = deploy.quant
        method = (f"PTQ {quant.get('algo', '?')} (segq)" if quant.get("method") == "ptq"
                  else QAT)
    early = deploy.argmax_before_resize
    if early is True:
        method += ", argmax before resize"
    elif early:
        method += f", argmax at {early:g} of the input size"
    return method


def candidates(exports: list[DeployInfo], settings: BenchSettings, peer_dir: Path,
               calib: Callable[[], list[np.ndarray]]) -> list[Candidate]:
    """Every export on every backend (FP32 exports first), then the peer PTQ models of the
    first FP32 export."""
    from ..deploy.onnx_backend import OnnxRuntimeModel, OpenVINOModel
    from ..deploy.onnx_graph import argmax_quantizer
    from ..deploy.paddle_inference import PaddleInferenceModel

    threads = settings.cpu_threads
    precision = lambda d: "int8" if d.is_int8 else "fp32"  # noqa: E731
    rows = [Candidate(PADDLE, precision(d), method_of(d), lambda d=d: PaddleInferenceModel(
        d.model_dir, cpu_threads=threads, int8=d.is_int8), (d.model_file, d.params_file))
        for d in exports]
    for name, runtime in ((ORT, OnnxRuntimeModel), (OPENVINO, OpenVINOModel)):
        rows += [Candidate(name, precision(d), method_of(d),
                           lambda r=runtime, d=d: r(d.onnx_file, threads), (d.onnx_file,))
                 for d in exports]
    if settings.peers:
        from .peer_ptq import nncf_quantize, ort_quantize_static

        source = exports[0].onnx_file
        ort_file = ort_quantize_static(source, peer_dir / "ort_ptq.onnx", calib())
        ov_xml = nncf_quantize(source, peer_dir / "nncf_ptq.xml", calib())
        ort_peers = {PTQ_ORT: ort_file}
        if argmax_quantizer(onnx.load(str(ort_file), load_external_data=False).graph):
            # the same quantizer without its arg max tie rule: segq's exports keep float logits
            ort_peers[PTQ_ORT_FLOAT_LOGITS] = ort_quantize_static(
                source, peer_dir / "ort_ptq_float_logits.onnx", calib(), float_logits=True)
        rows += [Candidate(ORT, "int8", method, lambda f=f: OnnxRuntimeModel(f, threads), (f,))
                 for method, f in ort_peers.items()]
        rows.append(Candidate(OPENVINO, "int8", PTQ_NNCF, lambda: OpenVINOModel(ov_xml, threads),
                              (ov_xml, ov_xml.with_suffix(".bin"))))
    # the runtimes' order in the table: Paddle, then ONNX Runtime, then OpenVINO
    order = {PADDLE: 0, ORT: 1, OPENVINO: 2}
    return sorted(rows, key=lambda c: order[c.backend])


def load_exports(fp32_dirs: list, int8_dirs: list) -> list[DeployInfo]:
    """The exports in order (FP32 first), checked: the right kind, one input size."""
    fp32s = [load_deploy_info(d) for d in fp32_dirs]
    int8s = [load_deploy_info(d) for d in int8_dirs]
    if not fp32s or not int8s or any(d.is_int8 for d in fp32s) or not all(
            d.is_int8 for d in int8s):
        listed = ", ".join(f"{d.deploy_file} (quantized: {d.is_int8})"
                           for d in fp32s + int8s)
        raise ValueError(f"expected FP32 exports, then INT8 exports (QAT or PTQ); got {listed}")
    hw = _fixed_hw(fp32s[0])
    for d in fp32s + int8s:
        if _fixed_hw(d) != hw:
            raise ValueError(f"{fp32s[0].deploy_file} and {d.deploy_file} take different "
                             f"input sizes: {list(hw)} against {list(_fixed_hw(d))}")
    return fp32s + int8s


def benchmark_network(cfg: SegConfig, fp32_dirs: list[str | os.PathLike],
                      int8_dirs: list[str | os.PathLike], work_dir: str | os.PathLike,
                      settings: BenchSettings = BenchSettings()) -> list[BenchRow]:
    """Benchmark one network's FP32 exports and INT8 exports (QAT or PTQ, e.g. with and
    without ``--argmax_before_resize``), all from export.py / qat_export.py / ptq.py with
    ``--input_shape -1 3 H W``. The first FP32 export is the speed-up baseline (under Paddle
    Inference) and the peers' source. ONNX models are converted into the export directories,
    peer PTQ models written to ``work_dir``."""
    from ..deploy.workflows import evaluate_backend

    exports = load_exports(fp32_dirs, int8_dirs)
    hw = _fixed_hw(exports[0])
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    calib_cache: list[np.ndarray] = []

    def calib() -> list[np.ndarray]:
        if not calib_cache:
            calib_cache.extend(calibration_batches(cfg, settings.calib_images, hw))
        return calib_cache

    for d in exports:
        logger.info(f"ONNX export of {d.model_dir}")
        # INT8: laid out for ONNX Runtime's integer kernels, from the peers' first images
        export_onnx(d.model_dir, calib_batches=(
            calib()[:settings.ort_layout_images] if d.is_int8 else None))
    exports = load_exports(fp32_dirs, int8_dirs)  # now naming their ONNX files
    dataset = build_dataset(cfg.val_dataset, "val_dataset")
    image = np.asarray(dataset[0]["img"], dtype=np.float32)[None]
    batch = np.repeat(image, settings.throughput_batch, axis=0)
    todo = candidates(exports, settings, work, calib)
    runners, mious = [], []
    for i, cand in enumerate(todo, 1):
        logger.info(f"[{i}/{len(todo)}] {cand.backend} {cand.precision} ({cand.method})")
        runners.append(cand.make())
        mious.append(evaluate_backend(cfg, runners[-1], settings.num_workers).miou
                     if settings.evaluate else None)
        if mious[-1] is not None:
            logger.info(f"    mIoU {mious[-1]:.4f}")
    logger.info(f"latency of the {len(todo)} engines, in turn over {settings.latency_rounds} "
                f"rounds")
    run_fns = [r.run for r in runners]
    lats = measure_interleaved(run_fns, image, settings.warmup, settings.latency_runs,
                               settings.latency_rounds)
    ipss = [None] * len(todo)
    if settings.throughput_batch:
        tputs = measure_interleaved(run_fns, batch, 2, settings.throughput_runs,
                                    settings.latency_rounds)
        ipss = [settings.throughput_batch / (t.median_ms / 1000.0) for t in tputs]
    del runners, run_fns
    measured = list(zip(todo, mious, lats, ipss))
    for cand, miou, lat, ips in measured:
        logger.info(f"{cand.backend} {cand.precision} ({cand.method}): "
                    + (f"mIoU {miou:.4f}, " if miou is not None else "")
                    + f"{lat.median_ms:.1f} ms (p90 {lat.p90_ms:.1f})"
                    + (f", {ips:.1f} img/s at batch {settings.throughput_batch}" if ips else ""))
    base = measured[0][2].median_ms  # Paddle Inference, first FP32 export
    return [BenchRow(model=cfg.model.type, backend=c.backend, precision=c.precision,
                     method=c.method, miou=miou, latency_ms=lat.median_ms, p90_ms=lat.p90_ms,
                     throughput_ips=ips, size_mb=files_size_mb(c.files),
                     speedup=base / lat.median_ms,
                     runs_ms=tuple(round(t, 2) for t in lat.times_ms))
            for c, miou, lat, ips in measured]


def benchmark_environment(cpu_threads: int) -> dict:
    """What the timings depend on: CPU, threads and every runtime's version."""
    from importlib.metadata import version

    from ..cpu_runtime import run_environment

    env = run_environment()
    env["threads"] = cpu_threads
    for package in ("onnxruntime", "openvino", "nncf", "paddle2onnx"):
        env[package] = version(package)
    return env
