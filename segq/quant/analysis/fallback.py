"""Automatic layer fallback (slim/quant_fallback.py): keep the fewest layers of an INT8 model
in float so its deployed mIoU stays within a budget of the FP32 model's.

1. Rank: on a few labeled val images, for every quantized sublayer, the mIoU (and output
   cosine) the INT8 model regains when only that sublayer is left in float, and loses when
   only it is quantized. The FP32 outputs are computed once and cached; each candidate is a
   variant of the exported INT8 program (:meth:`ExportedProgram.variant`), so nothing is
   re-calibrated or re-trained.
2. Search: the smallest prefix of the ranking whose variant, deployed under Paddle Inference
   INT8 and scored on the whole val set, meets the budget (doubling, then bisection); with a
   latency budget the ranking prefers layers that regain most per multiply-add, and a
   candidate must also run fast enough.
3. Write a config that inherits the original and lists the layers in ``quant.skip_layers``,
   with the measured figures in its comments; ``slim/ptq.py`` and ``slim/qat_train.py``
   take it. Ctrl-C stops the search and writes the best set verified so far.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config import SegConfig
from ...metrics import EvalResult, confusion_matrix
from .program import ExportedProgram, check_int8_export
from .tensor_stats import cosine

logger = logging.getLogger("segq")
RANK_BY = ("miou", "cosine", "deployed")


@dataclass(frozen=True)
class FallbackOptions:
    save_config: str                   # the config file to write
    work_dir: str = "output/quant_fallback"
    max_miou_drop: float = 0.005       # of the deployed INT8 model against deployed FP32
    max_latency_ms: float | None = None
    rank_images: int = 16              # labeled val images the ranking runs on
    # "miou" | "cosine" (a quicker, label-free proxy) | "deployed" (mIoU of each variant run
    # under Paddle Inference oneDNN INT8: slower, and sees the loss the program does not)
    rank_by: str = "miou"
    cpu_threads: int = 2
    latency_runs: int = 30


@dataclass
class LayerScore:
    name: str
    positions: list[int]
    macs: int
    regain_miou: float = 0.0           # only this sublayer in float, against all quantized
    regain_cos: float = 0.0
    loss_miou: float = 0.0             # only this sublayer quantized, against FP32
    loss_cos: float = 0.0


@dataclass
class Candidate:
    layers: list[str]
    miou: float
    latency_ms: float | None
    size_mb: float
    model_dir: Path

    def meets(self, floor: float, max_latency_ms: float | None) -> bool:
        return self.miou >= floor and (max_latency_ms is None or
                                       (self.latency_ms or 0.0) <= max_latency_ms)


@dataclass
class FallbackResult:
    fp32_miou: float
    fp32_latency_ms: float | None
    baseline: Candidate                # every layer quantized
    best: Candidate | None             # the chosen set (None: no candidate met the budget)
    tried: list[Candidate] = field(default_factory=list)
    ranking: list[LayerScore] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    config_path: Path | None = None


class RankingProbe:
    """The INT8 program's variants run on a few labeled images against cached FP32 scores."""

    def __init__(self, fp32: ExportedProgram, int8: ExportedProgram, samples, num_classes,
                 ignore_index):
        self.int8, self.samples = int8, samples
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.fp32_scores = [fp32.run(s["img"][None], [fp32.output])[0] for s in samples]
        self.fp32_miou = self._miou(self.fp32_scores)

    def _miou(self, scores) -> float:
        from ...deploy.postprocess import label_map

        conf = 0
        for s, out in zip(self.samples, scores):
            label = s.get("ori_label", s["label"])
            conf = conf + confusion_matrix(label_map(out[0], s.get("trans_info")), label,
                                           self.num_classes, self.ignore_index)
        return EvalResult.from_confusion(conf, len(scores)).miou

    measures_loss = True               # also scores "only this layer quantized"

    def measure(self, program=None, with_miou: bool = True) -> tuple[float, float]:
        """(mIoU or NaN, mean output cosine to FP32) of a program variant."""
        scores = self.outputs(program)
        cos = float(np.mean([cosine(r, t) for r, t in zip(self.fp32_scores, scores)]))
        return (self._miou(scores) if with_miou else float("nan")), cos

    def outputs(self, program=None) -> list[np.ndarray]:
        return [self.int8.run(s["img"][None], [self.int8.output], program)[0]
                for s in self.samples]


class DeployedProbe(RankingProbe):
    """Each variant written out and run under Paddle Inference oneDNN INT8, where fused
    convs requantize with scales the fake-quant program never applies, so a loss that only
    the deployed model shows is ranked too (docs/experiments, DeepLabV3+ KL). One predictor
    build per layer, so only the regain ("this layer alone in float") is scored."""

    measures_loss = False

    def __init__(self, *args, work_dir: Path, cpu_threads: int = 2, **kwargs):
        super().__init__(*args, **kwargs)
        self.work_dir, self.cpu_threads = Path(work_dir), cpu_threads

    def outputs(self, program=None) -> list[np.ndarray]:
        from ...deploy.paddle_inference import PaddleInferenceModel

        out = self.work_dir / "rank_variant"
        shutil.rmtree(out, ignore_errors=True)
        # the scores, as the program probe compares them (the arg max after them is pruned)
        self.int8.save(program if program is not None else self.int8.program, out,
                       fetch=self.int8.output)
        backend = PaddleInferenceModel(out, use_mkldnn=True, int8=True,
                                       cpu_threads=self.cpu_threads)
        return [backend.run(s["img"][None]) for s in self.samples]


def rank_layers(probe: RankingProbe, names: list[str], macs: list[int],
                rank_by: str = "miou", by_cost: bool = False) -> list[LayerScore]:
    """One score per quantized sublayer, best fallback candidate first."""
    from tqdm import tqdm

    by_name: dict[str, LayerScore] = {}
    for layer, name, m in zip(probe.int8.layers, names, macs):
        if layer.quantized:
            score = by_name.setdefault(name, LayerScore(name, [], 0))
            score.positions.append(layer.position)
            score.macs += m
    with_miou = rank_by in ("miou", "deployed")
    base_miou, base_cos = probe.measure(with_miou=with_miou)
    scores = list(by_name.values())
    for score in tqdm(scores, desc="rank layers", unit="layer", leave=False, disable=None):
        miou, cos = probe.measure(probe.int8.variant(float_layers=score.positions), with_miou)
        score.regain_miou, score.regain_cos = miou - base_miou, cos - base_cos
        if probe.measures_loss:
            miou, cos = probe.measure(probe.int8.variant(keep_quantized=score.positions),
                                      with_miou)
            score.loss_miou, score.loss_cos = probe.fp32_miou - miou, 1.0 - cos

    def key(s: LayerScore):
        regain = s.regain_miou if with_miou else s.regain_cos
        loss = s.loss_miou if with_miou else s.loss_cos
        value = (regain, loss, s.regain_cos)
        if by_cost:  # per multiply-add: the cheapest accuracy first
            per = max(s.macs, 1)
            value = (regain / per, loss / per, s.regain_cos / per)
        return value

    return sorted(scores, key=key, reverse=True)


def layer_macs(fp32: ExportedProgram, sample) -> list[int]:
    """Multiply-adds of every program layer on one input (weight size per output channel
    times output elements)."""
    outs = fp32.run(sample["img"][None], [l.output for l in fp32.layers])
    macs = []
    for layer, out in zip(fp32.layers, outs):
        w = fp32.float_weight(layer)
        per_output = w.size // w.shape[0] if layer.op_type != "matmul_v2" else w.shape[0]
        macs.append(int(per_output * out.size))
    return macs


def search(ranking: list[LayerScore], verify, floor: float, max_latency_ms: float | None,
           tried: list[Candidate]) -> Candidate | None:
    """The smallest prefix of ``ranking`` whose verified candidate meets the budget: try 1,
    2, 4, ... layers until one does, then bisect between the last miss and that hit. Every
    verified candidate is appended to ``tried`` (also when interrupted)."""
    def check(k: int) -> Candidate:
        c = verify([s.name for s in ranking[:k]])
        tried.append(c)
        return c

    n = len(ranking)
    low, high, best = 0, None, None
    k = 1
    while k <= n:
        c = check(k)
        if c.meets(floor, max_latency_ms):
            high, best = k, c
            break
        low = k
        k = n if k < n < 2 * k else 2 * k
    if high is None:
        return None
    while high - low > 1:
        mid = (low + high) // 2
        c = check(mid)
        if c.meets(floor, max_latency_ms):
            high, best = mid, c
        else:
            low = mid
    return best


def quant_fallback(cfg: SegConfig, config_path: str, fp32_weights: str, opts: FallbackOptions,
                   qat_weights: str | None = None, ptq_algo: str | None = None,
                   model_dir: str | None = None, calib_source=None) -> FallbackResult:
    """Find and write the fallback config (see the module doc); the INT8 model is a QAT
    checkpoint, a PTQ calibration run here with ``ptq_algo``, or an existing export."""
    from ...builders import build_qat_model
    from ...data.loader import build_eval_loader
    from ...deploy.deploy_file import read_deploy_file
    from ...deploy.workflows import export_model
    from ..qat import export_qat_model
    from .layer_names import fp32_model_and_val_set, layer_call_order, name_program_layers

    given = [x is not None for x in (qat_weights, ptq_algo, model_dir)]
    if sum(given) != 1:
        raise ValueError("give the INT8 model as one of --model_path (QAT checkpoint), "
                         "--ptq_algo (calibrate here) or --model_dir (an INT8 export)")
    if not fp32_weights:
        raise ValueError("--fp32_model: give the FP32 weights the INT8 model came from")
    if not 0.0 <= opts.max_miou_drop < 1.0:
        raise ValueError(f"--max_miou_drop must be in [0, 1), got {opts.max_miou_drop}")
    if opts.rank_by not in RANK_BY:
        raise ValueError(f"--rank_by must be one of {', '.join(RANK_BY)}, got "
                         f"{opts.rank_by!r}")
    if opts.rank_images < 1:
        raise ValueError(f"--rank_images must be >= 1, got {opts.rank_images}")
    out_config = Path(opts.save_config)
    if out_config.exists():
        raise ValueError(f"--save_config {out_config} exists: give a new file (a search "
                         f"never replaces another's result)")
    work = Path(opts.work_dir)
    if work.exists() and any(work.iterdir()):
        raise ValueError(f"--work_dir {work} already exists and is not empty: give a new one")
    if model_dir is not None:
        check_int8_export(model_dir)
    t0 = time.perf_counter()
    model, dataset = fp32_model_and_val_set(cfg, fp32_weights)
    fp32_dir = export_model(cfg, model, work / "fp32")
    if qat_weights:
        model_dir = export_qat_model(cfg, build_qat_model(cfg, qat_weights=qat_weights),
                                     work / "int8")
    elif ptq_algo:
        from ..ptq import PTQOptions, ptq
        from ..calibration import CalibrationSource

        model_dir = ptq(cfg, fp32_weights, PTQOptions(
            save_dir=str(work / "int8"), algo=ptq_algo,
            source=calib_source or CalibrationSource()))[0].model_dir
    fp32 = ExportedProgram(fp32_dir)
    int8 = ExportedProgram(model_dir, float_source=fp32)
    samples = []
    for sample in build_eval_loader(dataset):
        samples.append(sample)
        if len(samples) == opts.rank_images:
            break
    names = name_program_layers(int8.layers, layer_call_order(
        model, [1, *samples[0]["img"].shape]), model_dir)
    deployed = Deployment(cfg, fp32_dir, opts, samples[0]["img"][None])
    fp32_miou, fp32_ms = deployed.score(fp32_dir, int8=False)
    floor = fp32_miou - opts.max_miou_drop
    baseline = deployed.candidate(int8, [], names, model_dir, work / "candidates")
    logger.info(f"deployed FP32 mIoU {fp32_miou:.4f}, INT8 (no fallback) "
                f"{baseline.miou:.4f}; budget: mIoU >= {floor:.4f}")
    result = FallbackResult(fp32_miou, fp32_ms, baseline, None)
    if baseline.meets(floor, opts.max_latency_ms):
        result.best = baseline
    else:
        probe_args = (fp32, int8, samples, dataset.num_classes, dataset.ignore_index)
        probe = (DeployedProbe(*probe_args, work_dir=work, cpu_threads=opts.cpu_threads)
                 if opts.rank_by == "deployed" else RankingProbe(*probe_args))
        result.ranking = rank_layers(probe, names, layer_macs(fp32, samples[0]), opts.rank_by,
                                     by_cost=opts.max_latency_ms is not None)
        try:
            result.best = search(result.ranking, lambda layers: deployed.candidate(
                int8, layers, names, model_dir, work / "candidates"), floor,
                opts.max_latency_ms, result.tried)
        except KeyboardInterrupt:
            result.interrupted = True
            met = [c for c in result.tried if c.meets(floor, opts.max_latency_ms)]
            result.best = min(met, key=lambda c: len(c.layers)) if met else None
    chosen = result.best or max([baseline, *result.tried], key=lambda c: c.miou)
    if not result.interrupted:  # what the fallback costs in speed, also without a budget
        if result.fp32_latency_ms is None:
            result.fp32_latency_ms = deployed.latency(fp32_dir, int8=False)
        for c in {id(c): c for c in (baseline, chosen)}.values():
            if c.latency_ms is None:
                c.latency_ms = deployed.latency(c.model_dir, int8=True)
    result.seconds = time.perf_counter() - t0
    already = (read_deploy_file(model_dir) or {}).get("Quant", {}).get("skipped_layers", [])
    result.config_path = write_fallback_config(out_config, config_path, cfg, chosen, result,
                                               opts, already)
    write_result_files(result, opts, work)
    if result.interrupted:
        raise KeyboardInterrupt(f"interrupted: the best set verified so far "
                                f"({len(chosen.layers)} layers in float, mIoU "
                                f"{chosen.miou:.4f}) is in {result.config_path}")
    return result


class Deployment:
    """Scores exports under Paddle Inference oneDNN on the whole val set (and times them)."""

    def __init__(self, cfg: SegConfig, fp32_dir: Path, opts: FallbackOptions,
                 batch: np.ndarray):
        self.cfg, self.fp32_dir, self.opts, self.batch = cfg, fp32_dir, opts, batch

    def score(self, model_dir: Path, int8: bool) -> tuple[float, float | None]:
        """Val mIoU, and the median latency when there is a latency budget."""
        from ...deploy.workflows import evaluate_inference_model

        miou = evaluate_inference_model(self.cfg, str(model_dir), int8=int8,
                                        cpu_threads=self.opts.cpu_threads).miou
        timed = self.opts.max_latency_ms is not None
        return miou, (self.latency(model_dir, int8) if timed else None)

    def latency(self, model_dir: Path, int8: bool) -> float:
        """Median ms at batch 1 under Paddle Inference oneDNN."""
        from ...bench.latency import measure_latency
        from ...deploy.paddle_inference import PaddleInferenceModel

        backend = PaddleInferenceModel(model_dir, use_mkldnn=True, int8=int8,
                                       cpu_threads=self.opts.cpu_threads)
        return measure_latency(backend.run, self.batch, runs=self.opts.latency_runs).median_ms

    def candidate(self, int8: ExportedProgram, layers: list[str], names: list[str],
                  model_dir, root: Path) -> Candidate:
        """The INT8 export with ``layers`` (sublayer names) in float, written under ``root``
        and scored deployed."""
        from ...bench.latency import files_size_mb
        from ...deploy.deploy_file import read_deploy_file, write_deploy_file

        out = root / f"{len(layers):03d}_layers"
        shutil.rmtree(out, ignore_errors=True)
        positions = [l.position for l, n in zip(int8.layers, names) if n in set(layers)]
        int8.save(int8.variant(float_layers=positions), out)
        deploy = read_deploy_file(model_dir) or {}
        quant = dict(deploy.get("Quant") or {})
        quant["skipped_layers"] = sorted(set(quant.get("skipped_layers") or []) | set(layers))
        quant["fallback"] = {"from": str(model_dir), "layers_in_float": list(layers)}
        deploy["Quant"] = quant
        write_deploy_file(out / "deploy.yaml", deploy)
        if (Path(model_dir) / "config.yml").is_file():
            shutil.copyfile(Path(model_dir) / "config.yml", out / "config.yml")
        miou, ms = self.score(out, int8=True)
        logger.info(f"{len(layers)} layers in float: mIoU {miou:.4f}"
                    + (f", {ms:.1f} ms" if ms is not None else ""))
        return Candidate(list(layers), miou, ms,
                         files_size_mb([out / "model.pdmodel", out / "model.pdiparams"]), out)


def write_fallback_config(path: Path, config_path: str, cfg: SegConfig, chosen: Candidate,
                          r: FallbackResult, opts: FallbackOptions,
                          already: list[str] = ()) -> Path:
    """A config inheriting ``config_path`` whose ``quant.skip_layers`` adds ``chosen``'s
    layers to the config's own and to those the INT8 export ``already`` kept in float, with
    the measured figures as comments; written atomically."""
    import yaml

    from ...builders import quant_config_of
    from ...cpu_runtime import cpu_model

    skip = []
    for name in [*quant_config_of(cfg).skip_layers, *already, *chosen.layers]:
        if name not in skip:
            skip.append(name)
    base = os.path.relpath(Path(config_path).resolve(), path.resolve().parent)
    ms = (lambda v: "-" if v is None else f"{v:.1f} ms")
    status = ("met" if r.best is not None else "NOT met (the best mIoU found)")
    lines = [
        f"# Written by slim/quant_fallback.py in {r.seconds / 60:.1f} min; budget: mIoU drop "
        f"<= {opts.max_miou_drop}" + (f", latency <= {opts.max_latency_ms} ms"
                                      if opts.max_latency_ms is not None else "")
        + f": {status}" + (" (search interrupted)" if r.interrupted else "") + ".",
        f"# Deployed under Paddle Inference oneDNN, {opts.cpu_threads} threads, "
        f"{cpu_model()}, val set:",
        f"#   FP32: mIoU {r.fp32_miou:.4f}, {ms(r.fp32_latency_ms)}",
        f"#   INT8, every layer quantized: mIoU {r.baseline.miou:.4f}, "
        f"{ms(r.baseline.latency_ms)}, {r.baseline.size_mb:.2f} MB",
        f"#   INT8, the {len(chosen.layers)} layers below in float: mIoU {chosen.miou:.4f}, "
        f"{ms(chosen.latency_ms)}, {chosen.size_mb:.2f} MB",
        f"# from {r.baseline.model_dir.parent.parent}; use with slim/ptq.py or slim/qat_train.py.",
    ]
    body = yaml.safe_dump({"_base_": base, "quant": {"skip_layers": skip}}, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n" + body)
    os.replace(tmp, path)
    return path


def summary(r: FallbackResult) -> str:
    chosen = r.best
    if chosen is None:
        return (f"no set of layers met the budget; the best found is in {r.config_path}"
                f" ({len(r.tried)} candidates tried)")
    speed = ""
    if chosen.latency_ms is not None and r.baseline.latency_ms is not None:
        speed = f", {r.baseline.latency_ms:.1f} -> {chosen.latency_ms:.1f} ms"
    return (f"{len(chosen.layers)} layers fall back to float: mIoU {r.baseline.miou:.4f} -> "
            f"{chosen.miou:.4f} (FP32 {r.fp32_miou:.4f}){speed}, size "
            f"{r.baseline.size_mb:.2f} -> {chosen.size_mb:.2f} MB; {len(r.tried)} candidates "
            f"verified in {r.seconds / 60:.1f} min; config: {r.config_path}")


def result_markdown(r: FallbackResult, opts: FallbackOptions) -> str:
    """Every verified candidate (deployed, whole val set) beside FP32, and the ranking's
    head."""
    from ...cpu_runtime import cpu_model

    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    floor = r.fp32_miou - opts.max_miou_drop
    lines = [f"Budget: mIoU >= {floor:.4f} (FP32 {r.fp32_miou:.4f} - {opts.max_miou_drop})"
             + (f", latency <= {opts.max_latency_ms} ms" if opts.max_latency_ms else "")
             + f"; Paddle Inference oneDNN, {opts.cpu_threads} threads, {cpu_model()}; "
             f"search {r.seconds / 60:.1f} min" + (" (interrupted)" if r.interrupted else ""),
             "", "| layers in float | mIoU | vs FP32 | ms | MB | meets |",
             "|---:|---:|---:|---:|---:|---|",
             f"| FP32 model | {r.fp32_miou:.4f} | | {ms(r.fp32_latency_ms)} | | |"]
    for c in sorted({id(c): c for c in [r.baseline, *r.tried]}.values(),
                    key=lambda c: len(c.layers)):
        mark = "**chosen**" if c is r.best else ("yes" if c.meets(
            floor, opts.max_latency_ms) else "no")
        lines.append(f"| {len(c.layers)} | {c.miou:.4f} | {c.miou - r.fp32_miou:+.4f} | "
                     f"{ms(c.latency_ms)} | {c.size_mb:.2f} | {mark} |")
    if r.ranking:
        lines += ["", f"Ranking (first 10 of {len(r.ranking)}; on {opts.rank_images} val "
                  f"images, by {opts.rank_by}):", "",
                  "| # | sublayer | mIoU regained alone in float | mIoU lost alone quantized "
                  "| cosine regained | MMACs |", "|---:|---|---:|---:|---:|---:|"]
        lines += [f"| {i + 1} | {s.name} | {s.regain_miou:+.4f} | {s.loss_miou:+.4f} | "
                  f"{s.regain_cos:+.5f} | {s.macs / 1e6:.1f} |"
                  for i, s in enumerate(r.ranking[:10])]
    return "\n".join(lines)


def write_result_files(r: FallbackResult, opts: FallbackOptions, work: Path) -> None:
    """``fallback.md`` (the table) and ``fallback.json`` in the work directory."""
    import dataclasses
    import json

    from ...cpu_runtime import run_environment

    def candidate(c: Candidate) -> dict:
        return {**dataclasses.asdict(c), "model_dir": str(c.model_dir)}

    (work / "fallback.md").write_text(result_markdown(r, opts) + "\n")
    (work / "fallback.json").write_text(json.dumps({
        "options": dataclasses.asdict(opts), "environment": run_environment(),
        "fp32_miou": r.fp32_miou, "fp32_latency_ms": r.fp32_latency_ms,
        "baseline": candidate(r.baseline),
        "best": candidate(r.best) if r.best else None,
        "tried": [candidate(c) for c in r.tried],
        "ranking": [dataclasses.asdict(s) for s in r.ranking],
        "seconds": r.seconds, "interrupted": r.interrupted,
        "config": str(r.config_path)}, indent=2))

