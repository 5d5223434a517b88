"""Per-op profiles of deployed models: Paddle's report is parsed, OpenVINO's counters summed,
and both account for the ops a model runs."""
import numpy as np
import pytest

from segq.config import load_config
from segq.deploy.onnx_export import export_onnx
from segq.deploy.profile import (parse_paddle_profile, profile_markdown, profile_openvino,
                                 profile_paddle)
from segq.engine.workflows import export_model
from tests.test_qat_export import DEMO
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


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "fp32"
    export_model(load_config(DEMO), trained_like("BiSeNetV2", 4), out, [-1, 3, 64, 96])
    return out


def test_profiles_cover_the_models_ops(export_dir):
    x = np.random.default_rng(0).standard_normal([1, 3, 64, 96]).astype("float32")
    paddle_ops = profile_paddle(export_dir, x, int8=False, cpu_threads=1, runs=3)
    ov_ops = profile_openvino(export_onnx(export_dir), x, cpu_threads=1, runs=3)
    for ops, conv in ((paddle_ops, "conv2d"), (ov_ops, "Convolution")):
        assert sum(o.share for o in ops) == pytest.approx(1.0)
        assert any(conv in o.op for o in ops) and all(o.ms_per_run >= 0 for o in ops)
    md = profile_markdown("BiSeNetV2 FP32", paddle_ops, top=3)
    assert md.startswith("### BiSeNetV2 FP32") and "| (other) |" in md and "**total**" in md
