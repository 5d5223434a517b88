"""Per-op profiles of deployed models: Paddle's report is parsed, OpenVINO's counters summed,
and both account for the ops a model runs."""
import sys
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from segq.bench.profile import (OpComparison, OpTime, _shares, parse_paddle_profile,
                                profile_markdown, profile_onnxruntime, profile_openvino,
                                profile_paddle)
from segq.config import load_config
from segq.deploy.export import ExportOptions
from segq.deploy.onnx_export import export_onnx
from segq.deploy.workflows import export_model
from tests.helpers import DEMO
from tests.zoo import trained_like

REPORT = """-------------------------       Event Summary       -------------------------
Event                                      Calls       Total       Min.        Max.
thread0::top_k_v2                          20          1180.75     31.6505     125.518
thread0::fused_conv2d                      1120        612.705     0.051674    47.5192
thread0::Executor::Run                     1           12.5546     12.5546     12.5546
  Executor::RunPartialPreparedContext      1           12.3529     12.3529     12.3529
thread1::fused_conv2d                      10          7.295       0.1         1.0
"""


def test_paddle_report_is_summed_per_op_type():
    totals = parse_paddle_profile(REPORT)
    assert totals == {"top_k_v2": pytest.approx(1180.75), "fused_conv2d": pytest.approx(620.0)}


def test_shares_are_per_run_times_and_fractions_largest_first():
    ops = _shares(Counter({"pool2d": 10.0, "conv2d": 60.0, "relu": 10.0, "bn": 0.0}), runs=4)
    assert ops == [OpTime("conv2d", 15.0, 0.75), OpTime("pool2d", 2.5, 0.125),
                   OpTime("relu", 2.5, 0.125), OpTime("bn", 0.0, 0.0)]
    assert _shares(Counter({"idle": 0.0}), runs=2) == [OpTime("idle", 0.0, 0.0)]  # no 0 / 0


def test_markdown_lists_the_top_ops_then_the_rest_and_the_total():
    ops = [OpTime("conv2d", 6.0, 0.6), OpTime("pool2d", 2.5, 0.25), OpTime("relu", 1.0, 0.1),
           OpTime("bn", 0.5, 0.05)]
    assert profile_markdown("Net INT8", ops, top=2).splitlines() == [
        "### Net INT8", "", "| op (kernel) | ms per run | share |", "|---|---:|---:|",
        "| conv2d | 6.00 | 60.0% |", "| pool2d | 2.50 | 25.0% |",
        "| (other) | 1.50 | 15.0% |", "| **total** | **10.00** | |"]
    assert "(other)" not in profile_markdown("Net", ops, top=4)


def test_openvino_counters_are_summed_over_the_timed_runs_only(monkeypatch):
    """OpenVINO replaced by a stub whose per-node counters are known: the warm-up inference
    (100 ms of convolution) is left out and the timed ones are averaged per node type."""
    ms = lambda v: timedelta(milliseconds=v)  # noqa: E731
    node = lambda t, e, v: SimpleNamespace(node_type=t, exec_type=e, real_time=ms(v))  # noqa: E731
    per_infer = [  # what profiling_info reports after each infer call
        [node("Convolution", "jit_avx512", 100.0)],
        [node("Convolution", "jit_avx512", 3.0), node("Convolution", "jit_avx512", 2.0),
         node("Reorder", "ref", 1.0), node("Parameter", "unknown", 0.0)],
        [node("Convolution", "jit_avx512", 3.0), node("Reorder", "ref", 1.0),
         node("Parameter", "unknown", 0.0)],
    ]
    seen = {}

    class Request:
        def __init__(self):
            self.calls = 0

        def infer(self, inputs):
            seen.setdefault("inputs", []).append(inputs[0].shape)
            self.profiling_info = per_infer[self.calls]
            self.calls += 1

    model = SimpleNamespace(inputs=[SimpleNamespace(any_name="x")],
                            reshape=lambda shapes: seen.update(reshape=shapes))

    class Core:
        def read_model(self, path):
            seen["path"] = path
            return model

        def compile_model(self, m, device, config):
            seen["config"] = config
            return SimpleNamespace(create_infer_request=Request)

    monkeypatch.setitem(sys.modules, "openvino", SimpleNamespace(Core=Core))
    batch = np.zeros((1, 3, 8, 8), np.float32)
    ops = profile_openvino("m.onnx", batch, cpu_threads=3, runs=2)
    assert ops == [OpTime("Convolution (jit_avx512)", pytest.approx(4.0), pytest.approx(0.8)),
                   OpTime("Reorder (ref)", pytest.approx(1.0), pytest.approx(0.2)),
                   OpTime("Parameter (unknown)", 0.0, 0.0)]
    assert seen["path"] == "m.onnx" and seen["reshape"] == {"x": [1, 3, 8, 8]}
    assert seen["config"]["PERF_COUNT"] is True and seen["config"]["INFERENCE_NUM_THREADS"] == 3
    assert seen["inputs"] == [(1, 3, 8, 8)] * 3


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "fp32"
    export_model(load_config(DEMO), trained_like("BiSeNetV2", 4), out,
                 ExportOptions(input_shape=[-1, 3, 64, 96]))
    return out


def test_profiles_cover_the_models_ops(export_dir):
    x = np.random.default_rng(0).standard_normal([1, 3, 64, 96]).astype("float32")
    paddle_ops = profile_paddle(export_dir, x, int8=False, cpu_threads=1, runs=3)
    onnx_file = export_onnx(export_dir)
    ov_ops = profile_openvino(onnx_file, x, cpu_threads=1, runs=3)
    ort_ops = profile_onnxruntime(onnx_file, x, cpu_threads=1, runs=3)
    for ops, conv in ((paddle_ops, "conv2d"), (ov_ops, "Convolution"), (ort_ops, "Conv")):
        times = [o.ms_per_run for o in ops]
        assert times == sorted(times, reverse=True) and times[0] > 0
        # BiSeNetV2's time is mostly convolutions (about 0.8 of it under both runtimes)
        assert sum(o.share for o in ops if conv in o.op) > 0.5, ops
    md = profile_markdown("BiSeNetV2 FP32", paddle_ops, top=3)
    assert md.startswith("### BiSeNetV2 FP32") and "| (other) |" in md and "**total**" in md


@pytest.mark.parametrize("op, conversion", [
    ("quantize", True), ("dequantize", True), ("reorder_brgemm", True), ("fused_conv2d", False),
    ("QuantizeLinear", True), ("DequantizeLinear", True), ("ReorderInput", True),
    ("QLinearConv", False), ("Reorder (ref_any)", True), ("FakeQuantize (jit_avx512)", True),
    ("Convolution (brgconv_avx512_I8)", False)])
def test_conversion_ops_of_every_runtime(op, conversion):
    assert OpComparison(op, 1.0, 2.0).conversion is conversion
