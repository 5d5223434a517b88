"""INT8 export of fake-quant models: the exported program runs under Paddle Inference oneDNN
INT8 and gives the fake-quant dygraph output; skipped layers carry no quantize ops."""
import numpy as np
import paddle
import pytest

from segq.config import QuantConfig, load_config
from segq.deploy.export import ExportOptions
from segq.deploy.paddle_inference import PaddleInferenceModel
from segq.quant.exported_ops import weight_ops
from segq.quant.qat import export_qat_model
from segq.registry import MODELS
from tests.helpers import DEMO, cosine
from tests.zoo import build_test_model, calibrated_qat

SHAPE = [2, 3, 64, 96]


def int8_vs_fake_quant(cfg, qat, tmp_path, x):
    with paddle.no_grad():
        ref = qat.model(paddle.to_tensor(x))[0].numpy()
    out_dir = export_qat_model(cfg, qat, tmp_path / "int8", ExportOptions(without_argmax=True))
    out = PaddleInferenceModel(out_dir, int8=True).run(x)
    return ref, out, out_dir


@pytest.fixture(scope="module")
def demo_cfg():
    return load_config(DEMO)


# Each quantizer setting the config offers, exported and run in INT8 on BiSeNetV2.
@pytest.mark.parametrize("quant", [
    {},
    {"weight_quantize_type": "abs_max"},
    {"activation_preprocess": "PACT"},
    {"onnx_format": False},
    {"fuse_conv_bn": True},
    {"weight_quantize_type": "abs_max", "fuse_conv_bn": True},
], ids=["channel_wise", "abs_max", "pact", "float_weights", "fold_bn", "abs_max_fold_bn"])
def test_int8_export_matches_the_fake_quant_model(quant, demo_cfg, tmp_path):
    qat = calibrated_qat("BiSeNetV2", QuantConfig(**quant))
    x = np.random.default_rng(0).standard_normal([1, 3, 64, 96]).astype("float32")
    ref, out, out_dir = int8_vs_fake_quant(demo_cfg, qat, tmp_path, x)
    assert out.shape == ref.shape
    assert cosine(out, ref) >= 0.99
    ops = weight_ops(out_dir)
    assert ops and all(op.weight_quantized and op.input_quantized for op in ops)
    assert paddle.in_dynamic_mode()  # PaddleSlim's PACT export would leave static mode on


def test_skipped_layers_carry_no_quantize_ops_in_the_export(demo_cfg, tmp_path):
    qat = calibrated_qat("BiSeNetV2", QuantConfig(skip_layers=["head.conv_1x1", "bga.*"]))
    skipped_weights = {layer.weight.name for name, layer in qat.model.named_sublayers()
                       if name in qat.skipped and isinstance(layer, paddle.nn.Conv2D)}
    assert len(skipped_weights) == 1 + 7  # head.conv_1x1 and BGA's seven convs
    x = np.random.default_rng(0).standard_normal([1, 3, 64, 96]).astype("float32")
    ref, out, out_dir = int8_vs_fake_quant(demo_cfg, qat, tmp_path, x)
    assert cosine(out, ref) >= 0.99
    ops = weight_ops(out_dir)
    exported_skipped = [op for op in ops if op.weight in skipped_weights]
    assert {op.weight for op in exported_skipped} == skipped_weights
    # (their inputs may pass a quantized producer's output scale: see WeightOp)
    assert not any(op.weight_quantized for op in exported_skipped), exported_skipped
    others = [op for op in ops if op.weight not in skipped_weights]
    assert others and all(op.weight_quantized and op.input_quantized for op in others)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_zoo_model_exports_to_int8_and_runs(name, demo_cfg, tmp_path):
    qat = calibrated_qat(name, QuantConfig())
    x = np.random.default_rng(0).standard_normal([1, 3, 64, 96]).astype("float32")
    ref, out, _ = int8_vs_fake_quant(demo_cfg, qat, tmp_path, x)
    assert out.shape == ref.shape and np.isfinite(out).all()
    assert cosine(out, ref) >= 0.99


# Paddle 3.3.1 lists learned-step-size quantizers, but per-tensor lsq_weight fails at the first
# training forward and the other two fail the legacy export, so the config does not offer
# them. When this test fails, Paddle has fixed them: add the type to segq/config/quant.py and
# to the export test above.
@pytest.mark.parametrize("weight, act, error", [
    ("lsq_weight", "moving_average_abs_max", "Shape not match"),
    ("channel_wise_lsq_weight", "moving_average_abs_max", "must be Value, but got Variable"),
    ("channel_wise_abs_max", "lsq_act", "should be `numpy.ndarray` or `DenseTensor`"),
])
def test_lsq_quantizers_still_fail_the_legacy_export(weight, act, error, tmp_path):
    model = build_test_model("BiSeNetV2", num_classes=5)
    quanter = paddle.quantization.ImperativeQuantAware(
        weight_quantize_type=weight, activation_quantize_type=act)
    quanter.quantize(model)
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    with pytest.raises(Exception, match=error):
        model.train()
        with paddle.no_grad():
            model(paddle.randn(SHAPE))
        model.eval()
        quanter.save_quantized_model(model, str(tmp_path / "model"), input_spec=spec)
