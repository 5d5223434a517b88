"""Weight-only exports (slim/ptq.py --weight_only: INT8 weights in model.pdiparams, float
inference): about 4x smaller; Paddle Inference cannot run them as stored, so segq dequantizes
them on load (segq.deploy.weight_only) and runs FP32; INT8 precision and ONNX are refused.

Measured on a random-weight BiSeNetV2 (5 classes, 1x3x96x128): params 2.42 MB vs 9.29 MB
(0.26x); through segq the output equals the FP32 model with int8-rounded weights (what the
export stores), and against the FP32 export cosine 0.9993, labels agreeing on 97.4% of pixels
(99.8% where FP32's top-2 logit margin is >= 0.1). A random network's logits are near-ties
on a few percent of pixels, which the rounding of 56 convs' weights flips; Paddle's own
fake-quant model (WeightQuantization's generate_test_model) gives the same output.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from segq.config import QuantConfig, load_config
from segq.deploy import Predictor, PredictorOptions
from segq.deploy.deploy_file import require_quantized_export
from segq.deploy.export import ExportOptions, export_inference_model
from segq.deploy.onnx_export import export_onnx
from segq.deploy.paddle_inference import PaddleInferenceModel
from segq.deploy.weight_only import FloatModel, dequantize, load_float_model
from segq.quant.paddleslim_adapter import quantize_weights_only
from segq.quant.ptq import PTQOptions, _quant_section, copy_writer, ptq
from tests.helpers import DEMO, cosine
from tests.zoo import trained_like

REPO = Path(__file__).resolve().parents[1]
SHAPE = [1, 3, 96, 128]
NUM_CLASSES = 5


def int8_round_trip(w: np.ndarray) -> np.ndarray:
    """Per-output-channel abs-max INT8 rounding of a conv filter, as Paddle's
    WeightQuantization stores it (channel_wise_abs_max), back in float."""
    amax = np.abs(w).reshape(w.shape[0], -1).max(axis=1).reshape([-1] + [1] * (w.ndim - 1))
    scale = amax / 127.0
    return np.where(scale > 0, np.around(w / np.where(scale > 0, scale, 1)) * scale, 0)


@pytest.fixture(scope="module")
def model():
    return trained_like("BiSeNetV2", NUM_CLASSES, shape=(2, 3, 96, 128))


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory) -> dict[str, Path]:
    """An FP32 export with logits out, and its weight-only export as slim/ptq.py writes it
    (quant_post_dynamic on the FP32 program, the same deploy.yaml plus its Quant section)."""
    root = tmp_path_factory.mktemp("weight_only")
    common = dict(options=ExportOptions(input_shape=SHAPE, without_argmax=True),
                  deploy_transforms=[{"type": "Normalize"}])
    fp32 = export_inference_model(model, root / "fp32", **common)
    quantize_weights_only(fp32, root / "raw", QuantConfig())
    opts = PTQOptions(save_dir=str(root / "wo"), weight_only=True)
    section = _quant_section(QuantConfig(), opts, "weight_only", [], None, 0.0)
    wo = export_inference_model(model, root / "wo", writer=copy_writer(root / "raw", section),
                                **common)
    return {"fp32": fp32, "weight_only": wo}


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)


def test_weight_only_export_stores_int8_weights(exports):
    fp32, wo = exports["fp32"], exports["weight_only"]
    ratio = (wo / "model.pdiparams").stat().st_size / (fp32 / "model.pdiparams").stat().st_size
    assert ratio < 0.35, ratio   # 0.26: conv weights in int8, BatchNorm and biases in float
    quant = yaml.safe_load((wo / "deploy.yaml").read_text())["Quant"]
    assert quant["method"] == "weight_only" and quant["activations"] == "float32"


def test_dequantized_model_is_the_fp32_model_with_rounded_weights(model, exports, x):
    out = PaddleInferenceModel(exports["weight_only"]).run(x)
    fp32 = PaddleInferenceModel(exports["fp32"]).run(x)
    assert out.shape == fp32.shape == (1, NUM_CLASSES, 96, 128) and out.dtype == np.float32

    # reference: the dygraph model with every conv filter rounded to int8 and back
    convs = [m for m in model.sublayers() if isinstance(m, paddle.nn.Conv2D)]
    saved = {id(c): c.weight.numpy() for c in convs}
    try:
        for c in convs:
            c.weight.set_value(int8_round_trip(saved[id(c)]).astype(np.float32))
        with paddle.no_grad():
            ref = model(paddle.to_tensor(x))[0].numpy()
    finally:
        for c in convs:
            c.weight.set_value(saved[id(c)])
    assert cosine(out, ref) >= 0.99999
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.999

    # against FP32: what weight-only INT8 costs (see the module docstring for the numbers)
    assert cosine(out, fp32) >= 0.999
    agree = out.argmax(1) == fp32.argmax(1)
    assert agree.mean() >= 0.97
    top2 = np.sort(fp32, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] >= 0.1   # not a near-tie of the random network
    assert decided.mean() >= 0.85 and agree[decided].mean() >= 0.99


def test_16_bit_weights_are_dequantized_too(exports, x, tmp_path):
    """--weight_bits 16 stores int16 (half the FP32 file) and is as good as FP32."""
    quantize_weights_only(exports["fp32"], tmp_path, QuantConfig(), weight_bits=16)
    info = yaml.safe_load((exports["weight_only"] / "deploy.yaml").read_text())
    info["Quant"]["weight_bits"] = 16
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    out = PaddleInferenceModel(tmp_path).run(x)
    fp32 = PaddleInferenceModel(exports["fp32"]).run(x)
    assert cosine(out, fp32) >= 0.99999 and (out.argmax(1) == fp32.argmax(1)).mean() >= 0.999


def test_load_float_model_dequantizes_every_conv_weight(exports):
    from paddle.base.proto import framework_pb2

    float_model = load_float_model(exports["weight_only"])
    assert paddle.in_dynamic_mode()   # static mode was left
    assert isinstance(float_model, FloatModel)
    program = framework_pb2.ProgramDesc()
    program.ParseFromString((exports["fp32"] / "model.pdmodel").read_bytes())
    conv_weights = {arg for op in program.blocks[0].ops
                    if op.type in ("conv2d", "depthwise_conv2d")
                    for i in op.inputs if i.parameter == "Filter" for arg in i.arguments}
    assert set(float_model.dequantized) == conv_weights and len(conv_weights) == 56
    program.ParseFromString(float_model.program)
    dtypes = {v.name: v.type.dense_tensor.tensor.data_type for v in program.blocks[0].vars}
    fp32 = framework_pb2.VarType.FP32
    assert all(dtypes[name] == fp32 for name in conv_weights)
    attrs = {a.name for op in program.blocks[0].ops for a in op.attrs}
    assert "quantization_type" not in attrs and not any(a.endswith("_quant_scale")
                                                         for a in attrs)
    # the float params hold the weights in float32: the FP32 file's size, give or take
    fp32_size = (exports["fp32"] / "model.pdiparams").stat().st_size
    assert abs(len(float_model.params) - fp32_size) < 0.01 * fp32_size


def test_dequantize_matches_paddles_formulas():
    from paddle.static.quantization import WeightQuantization

    rng = np.random.default_rng(0)
    paddle_wq = WeightQuantization(model_dir=None)
    conv_q = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    conv_s = list(rng.uniform(1e-3, 1e-2, 4))
    np.testing.assert_array_equal(
        dequantize(conv_q, conv_s, "conv2d", "post_weight_channel_wise_abs_max"),
        paddle_wq._conv_channel_wise_dequantization(conv_q, conv_s))
    mul_q = rng.integers(-127, 128, (6, 5)).astype(np.int8)
    mul_s = list(rng.uniform(1e-3, 1e-2, 5))
    np.testing.assert_array_equal(
        dequantize(mul_q, mul_s, "mul", "post_weight_channel_wise_abs_max"),
        paddle_wq._mul_channel_wise_dequantization(mul_q, mul_s))
    out = dequantize(conv_q, [0.5], "depthwise_conv2d", "post_weight_abs_max")
    np.testing.assert_array_equal(out, (conv_q * 0.5).astype(np.float32))
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="3 channel-wise scales"):
        dequantize(conv_q, conv_s[:3], "conv2d", "post_weight_channel_wise_abs_max")
    with pytest.raises(ValueError, match="one scale"):
        dequantize(conv_q, conv_s, "conv2d", "post_weight_abs_max")


def test_int8_is_refused_on_a_weight_only_export(exports):
    wo = exports["weight_only"]
    with pytest.raises(ValueError, match="a weight-only export runs in float: use int8=False"):
        PaddleInferenceModel(wo, int8=True)
    with pytest.raises(ValueError, match="a weight-only export runs in float: use "
                                         "precision 'fp32'"):
        Predictor(wo, PredictorOptions(precision="int8"))
    with pytest.raises(ValueError, match="backend 'paddle' only"):
        Predictor(wo, PredictorOptions(backend="onnxruntime"))
    # an FP32 export names both ways to make an INT8 one
    with pytest.raises(ValueError, match="no 'Quant:' section.*slim/qat_export.py.*slim/ptq.py"):
        require_quantized_export(exports["fp32"])


def test_onnx_export_is_refused(exports):
    wo = exports["weight_only"]
    before = (wo / "deploy.yaml").read_text()
    with pytest.raises(ValueError, match="the ONNX path takes the FP32 or an INT8 export"):
        export_onnx(wo)
    assert not (wo / "model.onnx").exists() and (wo / "deploy.yaml").read_text() == before


def test_clis_refuse_int8_and_onnx_in_one_line(exports):
    wo = str(exports["weight_only"])
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    for args, expected in (
            (["deploy/python/eval_deployed.py", "--config", DEMO, "--model_dir", wo,
              "--precision", "int8"],
             f"error: --precision int8 on {wo}: a weight-only export runs in float: use "
             f"--precision fp32"),
            (["deploy/python/export_onnx.py", "--model_dir", wo],
             "the ONNX path takes the FP32 or an INT8 export")):
        r = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 2, r.stderr[-2000:]
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and expected in lines[0], r.stderr[-2000:]


def test_ptq_weight_only_export_predicts_like_fp32(tmp_path):
    """slim/ptq.py's own path: a checkpoint -> ptq(weight_only=True) -> Predictor labels."""
    from segq.builders import build_model_for
    from segq.deploy.workflows import export

    cfg = load_config(REPO / DEMO)
    weights = tmp_path / "fp32.pdparams"
    model = build_model_for(cfg)
    model.train()
    with paddle.no_grad():   # BatchNorm statistics of a few batches, as trained_like does
        for _ in range(2):
            model(paddle.randn([2] + SHAPE[1:]) * 2.0 + 0.5)
    paddle.save(model.state_dict(), str(weights))
    [result] = ptq(cfg, str(weights), PTQOptions(save_dir=str(tmp_path / "wo"),
                                                 weight_only=True,
                                                 export=ExportOptions(input_shape=SHAPE)))
    fp32_dir = export(cfg, str(weights), str(tmp_path / "fp32"), ExportOptions(input_shape=SHAPE))
    assert result.size_bytes < 0.35 * (fp32_dir / "model.pdiparams").stat().st_size

    images = [np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8)
              for i in range(2)]
    wo_labels = Predictor(result.model_dir).predict(images)
    fp32_labels = Predictor(fp32_dir).predict(images)
    for a, b in zip(wo_labels, fp32_labels):
        assert a.shape == (96, 128) and (a == b).mean() >= 0.95
