"""ONNX export (paddle2onnx plus segq's repairs) and the ONNX Runtime / OpenVINO backends:
every zoo model gives Paddle's output, QAT models become QDQ graphs with INT8 weights that
keep the fake-quant output, and the Predictor runs them like the Paddle backend."""
import numpy as np
import onnx
import paddle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segq.config import QuantConfig, load_config
from segq.deploy import Predictor, PredictorOptions
from segq.deploy.deploy_file import load_deploy_info
from segq.deploy.export import ExportOptions
from segq.deploy.onnx_backend import OnnxRuntimeModel, OpenVINOModel
from segq.deploy.onnx_export import (_paddle2onnx, activations_to_uint8, bin_average_matrix,
                                     export_onnx)
from segq.deploy.onnx_qdq import FUSED_OPS, conv_kernels, onnxruntime_op_counts
from segq.deploy.paddle_inference import PaddleInferenceModel
from segq.deploy.workflows import export_model
from segq.quant.qat import export_qat_model
from segq.registry import MODELS
from tests.helpers import DEMO, cosine
from tests.zoo import calibrated_qat, trained_like

# H, W whose pyramid pools do not divide evenly: PP-LiteSeg pools a 3x4 map (stride 32) to
# 2x2 and 4x4, PSPNet a 5x7 map (stride 16) to 2, 3 and 6 bins.
SHAPE = [-1, 3, 72, 104]


@pytest.fixture(scope="module")
def demo_cfg():
    return load_config(DEMO)


def batch(n=1, seed=0):
    return np.random.default_rng(seed).standard_normal([n, *SHAPE[1:]]).astype("float32")


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 40), data=st.data())
def test_bin_average_matrix_is_paddles_adaptive_pooling(size, data):
    out = data.draw(st.integers(1, size))
    x = np.random.default_rng(size).standard_normal([1, 2, size, size + 3]).astype("float32")
    out_w = data.draw(st.integers(1, size + 3))
    ref = paddle.nn.functional.adaptive_avg_pool2d(paddle.to_tensor(x), (out, out_w)).numpy()
    got = bin_average_matrix(size, out) @ x @ bin_average_matrix(size + 3, out_w).T
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module", params=MODELS.names())
def fp32_export(request, demo_cfg, tmp_path_factory):
    name = request.param
    out = tmp_path_factory.mktemp(f"onnx_{name}")
    export_model(demo_cfg, trained_like(name, 5, (2, 3, 72, 104)), out / "fp32",
                 ExportOptions(input_shape=SHAPE, without_argmax=True))
    return name, out / "fp32"


def test_every_zoo_model_runs_under_onnxruntime_and_openvino_as_under_paddle(fp32_export):
    name, model_dir = fp32_export
    onnx_file = export_onnx(model_dir)
    assert load_deploy_info(model_dir).onnx_file == onnx_file
    x = batch(2)  # a dynamic batch: the throughput measurements rely on it
    ref = PaddleInferenceModel(model_dir, cpu_threads=1).run(x)
    for runtime in (OnnxRuntimeModel, OpenVINOModel):
        out = runtime(onnx_file, cpu_threads=1).run(x)
        assert out.shape == ref.shape
        assert rel_err(out, ref) < 1e-3, f"{name} under {runtime.__name__}"


@pytest.mark.parametrize("name", ["PPLiteSeg", "PSPNet"])
def test_paddle2onnx_alone_gets_uneven_adaptive_pools_wrong(name, demo_cfg, tmp_path):
    # pins why segq.deploy.onnx_export rebuilds those pools: when this fails, paddle2onnx
    # converts them exactly and the repair can go
    model_dir = export_model(demo_cfg, trained_like(name, 5, (2, 3, 72, 104)), tmp_path / "fp32",
                             ExportOptions(input_shape=SHAPE, without_argmax=True))
    deploy = load_deploy_info(model_dir)
    _paddle2onnx(deploy, tmp_path / "raw.onnx", 13)
    x = batch()
    ref = PaddleInferenceModel(model_dir, cpu_threads=1).run(x)
    try:  # an approximate AveragePool, or (for small maps) one with stride 0 that fails
        raw = OnnxRuntimeModel(tmp_path / "raw.onnx", cpu_threads=1).run(x)
    except Exception as e:  # noqa: BLE001 (ONNX Runtime raises its own Fail type)
        assert "AveragePool" in str(e)
    else:
        assert rel_err(raw, ref) > 1e-3


@pytest.mark.parametrize("name", ["BiSeNetV2", "PPLiteSeg"])
def test_qat_export_becomes_a_qdq_graph_with_int8_weights(name, demo_cfg, tmp_path):
    qat = calibrated_qat(name, QuantConfig())
    x = batch()
    with paddle.no_grad():
        ref = qat.model(paddle.to_tensor(x))[0].numpy()
    int8_dir = export_qat_model(demo_cfg, qat, tmp_path / "int8",
                                ExportOptions(input_shape=SHAPE, without_argmax=True))
    # the same architecture in float, for the file size
    fp32_dir = export_model(demo_cfg, trained_like(name, 5), tmp_path / "fp32",
                            ExportOptions(input_shape=SHAPE, without_argmax=True))
    int8_onnx, fp32_onnx = export_onnx(int8_dir), export_onnx(fp32_dir)

    graph = onnx.load(int8_onnx).graph
    inits = {t.name: t for t in graph.initializer}
    weight_dqs = [n for n in graph.node if n.op_type == "DequantizeLinear"
                  and n.input[0] in inits]
    assert weight_dqs and all(inits[n.input[0]].data_type == onnx.TensorProto.INT8
                              for n in weight_dqs)
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in inits for n in graph.node)
    # every remaining activation quantizer feeds a quantized op (the others were observers)
    readers = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n.op_type)
    for q in (n for n in graph.node if n.op_type == "QuantizeLinear"):
        dq_outputs = [d.output[0] for d in graph.node
                      if d.op_type == "DequantizeLinear" and d.input[0] == q.output[0]]
        assert any(op in ("Conv", "MatMul", "Gemm") for o in dq_outputs
                   for op in readers.get(o, []))
    assert int8_onnx.stat().st_size <= 0.3 * fp32_onnx.stat().st_size

    for runtime in (OnnxRuntimeModel, OpenVINOModel):
        out = runtime(int8_onnx, cpu_threads=1).run(x)
        assert cosine(out, ref) >= 0.99, runtime.__name__


def test_activations_to_uint8_keeps_every_value(demo_cfg, tmp_path):
    qat = calibrated_qat("BiSeNetV2", QuantConfig())
    int8_dir = export_qat_model(demo_cfg, qat, tmp_path / "int8",
                                ExportOptions(input_shape=SHAPE, without_argmax=True))
    model = onnx.load(export_onnx(int8_dir))
    # back to int8 activations (zero point 0), then forward again: the outputs must agree
    for t in model.graph.initializer:
        if t.name.endswith(".as_uint8"):
            t.CopyFrom(onnx.numpy_helper.from_array(
                np.zeros(onnx.numpy_helper.to_array(t).shape, np.int8), t.name))
    onnx.save(model, tmp_path / "s8.onnx")
    assert activations_to_uint8(model) > 0
    onnx.save(model, tmp_path / "u8.onnx")
    x = batch()
    s8 = OnnxRuntimeModel(tmp_path / "s8.onnx", 1).run(x)
    u8 = OnnxRuntimeModel(tmp_path / "u8.onnx", 1).run(x)
    np.testing.assert_allclose(u8, s8, rtol=0, atol=1e-5 * np.abs(s8).max())


def test_predictor_runs_the_onnx_backends_like_paddle(demo_cfg, tmp_path):
    model = trained_like("BiSeNetV2", 4, (2, 3, 96, 128))
    model_dir = export_model(demo_cfg, model, tmp_path / "fp32",
                             ExportOptions(input_shape=[-1, 3, 96, 128]))
    image = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    ref = Predictor(model_dir).predict([image])[0]
    with pytest.raises(ValueError, match="export_onnx.py"):
        Predictor(model_dir, PredictorOptions(backend="onnxruntime"))
    export_onnx(model_dir)
    for backend in ("onnxruntime", "openvino"):
        got = Predictor(model_dir, PredictorOptions(backend=backend)).predict([image])[0]
        assert (got == ref).mean() > 0.999, backend


def test_onnx_export_and_backend_errors(demo_cfg, tmp_path):
    dynamic = export_model(demo_cfg, trained_like("BiSeNetV2", 4), tmp_path / "dyn")
    with pytest.raises(ValueError, match="--input_shape"):
        export_onnx(dynamic)
    with pytest.raises(ValueError, match="backend must be one of"):
        PredictorOptions(backend="tensorrt")
    with pytest.raises(ValueError, match="runs on device 'cpu'"):
        PredictorOptions(backend="openvino", device="gpu")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxRuntimeModel(tmp_path / "nope.onnx")


def test_the_onnxruntime_int8_layout_runs_every_conv_as_an_integer_kernel(demo_cfg, tmp_path):
    # PP-LiteSeg: attention, concat, resize and pools between its convs
    qat = calibrated_qat("PPLiteSeg", QuantConfig())
    options = ExportOptions(input_shape=SHAPE, without_argmax=True)
    int8_dir = export_qat_model(demo_cfg, qat, tmp_path / "int8", options)
    paddle_int8 = PaddleInferenceModel(int8_dir, cpu_threads=1, int8=True)
    plain = OnnxRuntimeModel(export_onnx(int8_dir), 1)
    convs = sum(n.op_type == "Conv" for n in onnx.load(int8_dir / "model.onnx").graph.node)
    before = onnxruntime_op_counts(int8_dir / "model.onnx")
    x = [batch(seed=s) for s in range(4)]
    ref, plain_out = [paddle_int8.run(b) for b in x], [plain.run(b) for b in x]

    onnx_file = export_onnx(int8_dir, calib_batches=[batch(seed=10 + s) for s in range(4)])
    counts = onnxruntime_op_counts(onnx_file)
    assert conv_kernels(counts) == (convs, 0), counts
    assert conv_kernels(before)[0] < convs  # what the plain QDQ graph gave
    # step 4: the pools between the integer convs run on uint8 too, not dequantized
    assert counts.get("AveragePool", 0) == 0 and counts.get("QLinearAveragePool", 0) > 0, counts
    layout = yaml_deploy(int8_dir)["onnx_int8_layout"]
    assert layout["layout"] == "onnxruntime" and layout["calibrated_quantizers"] > 0
    assert layout["calibration_images"] == 4 and layout["fused_ops"] == list(FUSED_OPS)
    out = [OnnxRuntimeModel(onnx_file, 1).run(b) for b in x]
    # as close to Paddle's oneDNN INT8 as the plain QDQ graph is
    for o, p, r in zip(out, plain_out, ref):
        assert cosine(o, r) >= 0.99 and cosine(o, r) >= cosine(p, r) - 0.01
    # and re-exporting without calibration data gives Paddle's layout back, unrecorded (also
    # when the ONNX file deploy.yaml names is gone)
    onnx_file.unlink()
    export_onnx(int8_dir)
    assert "onnx_int8_layout" not in yaml_deploy(int8_dir)


def yaml_deploy(model_dir) -> dict:
    import yaml

    return yaml.safe_load((model_dir / "deploy.yaml").read_text())["Deploy"]
