"""Where a deployed model's time goes: per-op-type time under Paddle Inference (its built-in
profiler), ONNX Runtime (its JSON trace of kernel times) or OpenVINO (per-node performance
counters), as ms per run and share of the total. The evidence behind the speed notes in
docs/benchmark."""
from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# "thread0::fused_conv2d   1120   612.705   0.05   47.5   0.547   0.245"
_PADDLE_EVENT = re.compile(r"^thread\d+::(\S+)\s+(\d+)\s+([\d.]+)\s")


@dataclass(frozen=True)
class OpTime:
    op: str
    ms_per_run: float
    share: float


def _shares(totals: Counter, runs: int) -> list[OpTime]:
    total = sum(totals.values()) or 1.0
    return [OpTime(op, ms / runs, ms / total) for op, ms in totals.most_common()]


def _capture_native_stdout(fn) -> str:
    """Run ``fn`` with file descriptor 1 sent to a temporary file (Paddle's profiler prints
    from C++, past Python's sys.stdout) and return what was printed."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def parse_paddle_profile(text: str) -> Counter:
    """Total ms per op type from Paddle Inference's profiler report."""
    totals: Counter = Counter()
    for line in text.splitlines():
        m = _PADDLE_EVENT.match(line.strip())
        if m and m.group(1) != "Executor::Run":
            totals[m.group(1)] += float(m.group(3))
    return totals


def profile_paddle(model_dir: str | os.PathLike, batch: np.ndarray, int8: bool,
                   cpu_threads: int, runs: int) -> list[OpTime]:
    from paddle.inference import Config, create_predictor

    from ..deploy.deploy_file import model_files, require_quantized_export
    from ..deploy.paddle_inference import INT8_OPS, run_predictor

    if int8:
        require_quantized_export(model_dir)

    def run() -> None:
        model_file, params_file = model_files(model_dir)
        config = Config(str(model_file), str(params_file))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(cpu_threads)
        config.switch_ir_optim(True)
        config.enable_mkldnn()
        if int8:
            config.enable_mkldnn_int8(INT8_OPS)
        config.enable_profile()
        config.disable_glog_info()
        predictor = create_predictor(config)
        for _ in range(runs):
            run_predictor(predictor, batch)
        del predictor  # the report is printed when the predictor goes

    from ..cpu_runtime import native_stderr_filtered

    # the profiler's report includes warm-up; with a few dozen runs that is a small share
    with native_stderr_filtered():  # oneDNN pass reports, unless --verbose
        totals = parse_paddle_profile(_capture_native_stdout(run))
    if not totals:
        raise RuntimeError(f"Paddle Inference printed no profile for {model_dir}")
    return _shares(totals, runs)


def profile_openvino(model_file: str | os.PathLike, batch: np.ndarray, cpu_threads: int,
                     runs: int) -> list[OpTime]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(model_file))
    model.reshape({model.inputs[0].any_name: list(batch.shape)})
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": cpu_threads, "NUM_STREAMS": 1, "PERF_COUNT": True,
        "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    request.infer({0: batch})  # warm-up; counters are per request and cumulative below
    totals: Counter = Counter()
    for _ in range(runs):
        request.infer({0: batch})
        for p in request.profiling_info:
            totals[f"{p.node_type} ({p.exec_type})"] += p.real_time.total_seconds() * 1000
    return _shares(totals, runs)


def profile_onnxruntime(model_file: str | os.PathLike, batch: np.ndarray, cpu_threads: int,
                        runs: int) -> list[OpTime]:
    """Kernel time per op type of the graph ONNX Runtime runs (after its fusions: QLinearConv
    is an integer conv, Conv / FusedConv a float one), from its profiler's trace."""
    import json

    from ..deploy.onnx_backend import ort_session

    with tempfile.TemporaryDirectory(prefix="segq_ort_profile_") as tmp:
        session = ort_session(model_file, cpu_threads, enable_profiling=True,
                              profile_file_prefix=str(Path(tmp) / "trace"))
        feed = {session.get_inputs()[0].name: batch}
        session.run(None, feed)  # warm-up, dropped below with the session set-up
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: Counter = Counter()
    runs_seen = [e for e in events if e.get("name") == "model_run"]
    warm_end = runs_seen[0]["ts"] + runs_seen[0]["dur"] if runs_seen else 0
    for e in events:
        if (e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
                and e["ts"] >= warm_end):
            totals[e["args"]["op_name"]] += e["dur"] / 1000.0
    if not totals:
        raise RuntimeError(f"ONNX Runtime traced no kernel of {model_file}")
    return _shares(totals, runs)


def profile_markdown(title: str, ops: list[OpTime], top: int = 12) -> str:
    lines = [f"### {title}", "", "| op (kernel) | ms per run | share |", "|---|---:|---:|"]
    lines += [f"| {o.op} | {o.ms_per_run:.2f} | {o.share:.1%} |" for o in ops[:top]]
    rest = sum(o.ms_per_run for o in ops[top:])
    if rest:
        lines.append(f"| (other) | {rest:.2f} | {sum(o.share for o in ops[top:]):.1%} |")
    lines.append(f"| **total** | **{sum(o.ms_per_run for o in ops):.2f}** | |")
    return "\n".join(lines)


def onnx_file_of(model_dir: str | os.PathLike) -> Path:
    from ..deploy.deploy_file import load_deploy_info

    return load_deploy_info(model_dir).require_onnx_file("an ONNX Runtime or OpenVINO profile")


# the ops that only move data between float and INT8 (or between layouts): Paddle oneDNN,
# ONNX Runtime and OpenVINO names
CONVERSION_OPS = ("quantize", "dequantize", "requantize", "reorder", "transfer_layout",
                  "QuantizeLinear", "DequantizeLinear", "ReorderInput", "ReorderOutput",
                  "Reorder", "FakeQuantize")


@dataclass(frozen=True)
class OpComparison:
    op: str
    fp32_ms: float
    int8_ms: float

    @property
    def slower(self) -> bool:
        return self.int8_ms > self.fp32_ms

    @property
    def conversion(self) -> bool:
        op = self.op.split(" (")[0]  # OpenVINO's "Reorder (ref_any)"
        return any(op == c or op.startswith(c + "_") for c in CONVERSION_OPS)


def compare_op_times(fp32: list[OpTime], int8: list[OpTime]) -> list[OpComparison]:
    """Per op type, ms per run in the FP32 and the INT8 run (0 where a run lacks the op), the
    largest INT8 cost first."""
    a = {o.op: o.ms_per_run for o in fp32}
    b = {o.op: o.ms_per_run for o in int8}
    rows = [OpComparison(op, a.get(op, 0.0), b.get(op, 0.0)) for op in set(a) | set(b)]
    return sorted(rows, key=lambda r: (r.int8_ms - r.fp32_ms, r.int8_ms), reverse=True)


def op_comparison_markdown(rows: list[OpComparison]) -> str:
    total_a = sum(r.fp32_ms for r in rows)
    total_b = sum(r.int8_ms for r in rows)
    conv = sum(r.int8_ms for r in rows if r.conversion)
    lines = [f"INT8 {total_b:.2f} ms against FP32 {total_a:.2f} ms per run; "
             f"{conv:.2f} ms of the INT8 run ({conv / total_b if total_b else 0:.0%}) is "
             f"conversion between float and INT8 or between layouts.", "",
             "| op | FP32 ms | INT8 ms | INT8 / FP32 | |", "|---|---:|---:|---:|---|"]
    for r in rows:
        ratio = f"{r.int8_ms / r.fp32_ms:.2f}" if r.fp32_ms else "only INT8"
        note = "conversion" if r.conversion else ("slower in INT8" if r.slower else "")
        lines.append(f"| {r.op} | {r.fp32_ms:.2f} | {r.int8_ms:.2f} | {ratio} | {note} |")
    return "\n".join(lines)
