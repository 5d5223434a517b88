"""Arg max ties on quantized logits: finding the quantizer before an ArgMax, the three tie
rules, and ONNX Runtime's quantize_static with the logits left in float."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segq.bench.argmax_ties import RULES, tie_predictions
from segq.bench.peer_ptq import ort_quantize_static
from segq.deploy.onnx_backend import ort_session
from segq.deploy.onnx_graph import argmax_logit_path, argmax_quantizer

SHAPE = [1, 3, 8, 8]


def _head(resize_mode: str = "linear", quantized: bool = False) -> onnx.ModelProto:
    """conv -> [Q/DQ] -> Resize x2 -> [Q/DQ] -> ArgMax: a segmentation head in miniature."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (5, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["logits"], pads=[1, 1, 1, 1], name="conv")]
    last = "logits"
    if quantized:
        nodes += [helper.make_node("QuantizeLinear", ["logits", "s", "z"], ["lq"]),
                  helper.make_node("DequantizeLinear", ["lq", "s", "z"], ["ldq"])]
        last = "ldq"
    nodes.append(helper.make_node("Resize", [last, "", "scales"], ["up"], mode=resize_mode,
                                  name="resize"))
    last = "up"
    if quantized:
        nodes += [helper.make_node("QuantizeLinear", ["up", "s", "z"], ["uq"]),
                  helper.make_node("DequantizeLinear", ["uq", "s", "z"], ["udq"])]
        last = "udq"
    nodes.append(helper.make_node("ArgMax", [last], ["label"], axis=1, keepdims=0,
                                  name="argmax"))
    graph = helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [1, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_argmax_quantizer_finds_the_pair_the_arg_max_reads():
    assert argmax_quantizer(_head(quantized=True).graph) == ("up", "udq")
    assert argmax_quantizer(_head(quantized=False).graph) is None


def test_a_linear_resize_after_the_quantizer_leaves_float_scores():
    model = _head(quantized=True)
    # drop the pair after the resize: the arg max reads interpolated, off-grid values
    graph = model.graph
    for node in [n for n in graph.node if n.output[0] in ("uq", "udq")]:
        graph.node.remove(node)
    next(n for n in graph.node if n.op_type == "ArgMax").input[0] = "up"
    assert argmax_quantizer(graph) is None
    # a nearest resize copies grid values: the arg max still reads quantized scores
    next(n for n in graph.node if n.op_type == "Resize").attribute[0].s = b"nearest"
    assert argmax_quantizer(graph) == ("logits", "ldq")


def test_argmax_logit_path_stops_at_the_conv():
    names = [n.op_type for n in argmax_logit_path(_head(quantized=True).graph)]
    assert names == ["ArgMax", "DequantizeLinear", "QuantizeLinear", "Resize",
                     "DequantizeLinear", "QuantizeLinear"]


def test_tie_rules():
    scores = np.array([[[1.00, 0.0]], [[1.04, 0.0]], [[0.0, 2.0]]], np.float32)  # [C=3, 1, 2]
    quantized = np.round(scores / 0.1) * 0.1  # pixel 0: classes 0 and 1 tie at 1.0
    maps, tied = tie_predictions(scores, quantized)
    assert tied.tolist() == [[True, False]]
    assert maps[RULES[0]].tolist() == [[0, 2]]  # the lowest tied id, as ArgMax does
    assert maps[RULES[1]].tolist() == [[1, 2]]
    assert maps[RULES[2]].tolist() == [[1, 2]]  # the float scores say class 1


@pytest.fixture(scope="module")
def fp32_head(tmp_path_factory):
    path = tmp_path_factory.mktemp("head") / "model.onnx"
    onnx.save(_head(), str(path))
    return path


def test_ort_quantize_static_float_logits(fp32_head, tmp_path):
    calib = [np.random.default_rng(i).standard_normal(SHAPE).astype(np.float32)
             for i in range(4)]
    default = ort_quantize_static(fp32_head, tmp_path / "default.onnx", calib)
    floats = ort_quantize_static(fp32_head, tmp_path / "float.onnx", calib, float_logits=True)
    assert argmax_quantizer(onnx.load(str(default)).graph) is not None
    graph = onnx.load(str(floats)).graph
    assert argmax_quantizer(graph) is None
    # the conv is still quantized: only the logits' way to the arg max stays float
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") >= 1 and "Conv" in ops
    x = np.random.default_rng(9).standard_normal(SHAPE).astype(np.float32)
    ref = ort_session(fp32_head).run(None, {"x": x})[0]
    out = ort_session(floats).run(None, {"x": x})[0]
    assert out.shape == ref.shape and (out == ref).mean() > 0.8
