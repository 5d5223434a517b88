"""Peer PTQ baselines (ONNX Runtime static QDQ, OpenVINO + NNCF) on a tiny FP32 ONNX model."""
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from segq.bench.peer_ptq import model_size_mb, nncf_quantize, ort_quantize_static

SHAPE = [1, 3, 32, 32]


def _conv_relu_conv() -> onnx.ModelProto:
    # 64->64 3x3 weights (~144 KiB fp32) dominate the file, so int8 weights show in its size
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (64, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 64).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.05, (64, 64, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, 64).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 32, 32])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _two_inputs() -> onnx.ModelProto:
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, SHAPE) for n in ("a", "b", "y")]
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", vi[:2], vi[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _calib(n: int = 8, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(n)]


def _ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def fp32(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fp32") / "model.onnx"
    onnx.save(_conv_relu_conv(), str(path))
    return path


@pytest.fixture(scope="module")
def fresh_input() -> np.ndarray:
    return np.random.default_rng(123).standard_normal(SHAPE).astype(np.float32)


@pytest.fixture(scope="module")
def ort_int8(fp32, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ort") / "sub" / "model_int8.onnx"
    # a one-pass generator: the quantizer must not iterate calib_batches twice
    return ort_quantize_static(fp32, out, (b for b in _calib()))


@pytest.fixture(scope="module")
def nncf_int8(fp32, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nncf") / "model_int8.xml"
    return nncf_quantize(fp32, out, _calib())


# ---- ONNX Runtime ----------------------------------------------------------------------

def test_ort_writes_qdq_model(ort_int8):
    assert ort_int8.name == "model_int8.onnx" and ort_int8.is_file()
    # only the result is left in the output directory (temporaries cleaned up)
    assert sorted(p.name for p in ort_int8.parent.iterdir()) == ["model_int8.onnx"]
    model = onnx.load(str(ort_int8))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert ops.count("Conv") == 2
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    conv_weights = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
    dq_of = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for w in conv_weights:
        dq = dq_of[w]  # each Conv weight comes out of a DequantizeLinear ...
        q = inits[dq.input[0]]
        assert q.dtype == np.int8  # ... of an int8 initializer
        assert inits[dq.input[1]].shape == (q.shape[0],)  # per output channel scales
    # activations quantized to uint8
    act_zps = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert act_zps and all(zp.dtype == np.uint8 for zp in act_zps)


def test_ort_output_close_to_fp32(fp32, ort_int8, fresh_input):
    ref = _ort_run(fp32, fresh_input)
    out = _ort_run(ort_int8, fresh_input)
    assert out.shape == ref.shape
    assert _cosine(out, ref) >= 0.98


def test_ort_int8_file_is_smaller(fp32, ort_int8):
    assert model_size_mb(ort_int8) < 0.5 * model_size_mb(fp32)


def test_ort_empty_calib_raises(fp32, tmp_path):
    with pytest.raises(ValueError, match="calib"):
        ort_quantize_static(fp32, tmp_path / "q.onnx", [])
    assert not (tmp_path / "q.onnx").exists()


def test_ort_missing_model_raises(tmp_path):
    missing = tmp_path / "nope" / "model.onnx"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        ort_quantize_static(missing, tmp_path / "q.onnx", _calib(1))


def test_ort_two_inputs_raises(tmp_path):
    src = tmp_path / "two.onnx"
    onnx.save(_two_inputs(), str(src))
    with pytest.raises(ValueError, match="two.onnx"):
        ort_quantize_static(src, tmp_path / "q.onnx", _calib(1))


# ---- OpenVINO + NNCF -------------------------------------------------------------------

def test_nncf_writes_quantized_ir(nncf_int8):
    import openvino as ov
    assert nncf_int8.name == "model_int8.xml"
    assert sorted(p.name for p in nncf_int8.parent.iterdir()) == ["model_int8.bin",
                                                                   "model_int8.xml"]
    model = ov.Core().read_model(str(nncf_int8))
    ops = model.get_ordered_ops()
    # NNCF 3.4 (OpenVINO backend): activations go through FakeQuantize (256 levels) and
    # weights are stored as int8 Constants decompressed by Convert -> Multiply(scale)
    fqs = [op for op in ops if op.get_type_name() == "FakeQuantize"]
    assert len(fqs) == 2 and all(fq.get_attributes()["levels"] == 256 for fq in fqs)
    int8_consts = [op for op in ops if op.get_type_name() == "Constant"
                   and op.get_output_element_type(0) == ov.Type.i8]
    assert len(int8_consts) == 2
    assert all(c.output(0).get_target_inputs().pop().get_node().get_type_name() == "Convert"
               for c in int8_consts)


def test_nncf_output_close_to_fp32(fp32, nncf_int8, fresh_input):
    import openvino as ov
    compiled = ov.Core().compile_model(str(nncf_int8), "CPU", {"INFERENCE_NUM_THREADS": 1})
    out = compiled(fresh_input)[0]
    ref = _ort_run(fp32, fresh_input)
    assert out.shape == ref.shape
    assert _cosine(out, ref) >= 0.98


def test_nncf_size_counts_xml_and_bin(fp32, nncf_int8):
    size = nncf_int8.stat().st_size + nncf_int8.with_suffix(".bin").stat().st_size
    assert model_size_mb(nncf_int8) == pytest.approx(size / 2**20)
    assert model_size_mb(nncf_int8) < 0.5 * model_size_mb(fp32)


def test_nncf_empty_calib_raises(fp32, tmp_path):
    with pytest.raises(ValueError, match="calib"):
        nncf_quantize(fp32, tmp_path / "q.xml", iter([]))
    assert list(tmp_path.iterdir()) == []


def test_nncf_missing_model_raises(tmp_path):
    missing = tmp_path / "nope" / "model.onnx"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        nncf_quantize(missing, tmp_path / "q.xml", _calib(1))


def test_nncf_two_inputs_raises(tmp_path):
    src = tmp_path / "two.onnx"
    onnx.save(_two_inputs(), str(src))
    with pytest.raises(ValueError, match="two.onnx"):
        nncf_quantize(src, tmp_path / "q.xml", _calib(1))


def test_model_size_mb(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"\0" * 2**20)
    assert model_size_mb(f) == pytest.approx(1.0)
    (tmp_path / "m.xml").write_bytes(b"\0" * 2**19)
    with pytest.raises(FileNotFoundError, match=r"m\.bin"):
        model_size_mb(tmp_path / "m.xml")  # an IR without its weights
    (tmp_path / "m.bin").write_bytes(b"\0" * 2**19)
    assert model_size_mb(tmp_path / "m.xml") == pytest.approx(1.0)


def _relu_bn_conv() -> onnx.ModelProto:
    # a BatchNorm that no conv absorbs (it reads a Relu), as after BiSeNetV2's concats
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in [
        ("s", rng.uniform(0.5, 1.5, 3)), ("b", rng.normal(0, 0.1, 3)),
        ("m", rng.normal(0, 0.1, 3)), ("v", rng.uniform(0.5, 1.5, 3)),
        ("w", rng.normal(0, 0.3, (8, 3, 3, 3)))]]
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Conv", ["n", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_ort_quantize_static_keeps_onnxruntime_warnings_out_of_the_log(tmp_path, caplog,
                                                                      monkeypatch):
    src = tmp_path / "bn.onnx"
    onnx.save(_relu_bn_conv(), src)
    caplog.set_level("WARNING")
    ort_quantize_static(src, tmp_path / "quiet.onnx", _calib(2))
    assert not [r for r in caplog.records if "out-of-range" in r.getMessage()]
    # the same call without the guard: ONNX Runtime does warn on this model
    import contextlib

    from segq.bench import peer_ptq
    monkeypatch.setattr(peer_ptq, "_root_warnings_off", contextlib.nullcontext)
    ort_quantize_static(src, tmp_path / "loud.onnx", _calib(2))
    assert [r for r in caplog.records if "out-of-range" in r.getMessage()]
