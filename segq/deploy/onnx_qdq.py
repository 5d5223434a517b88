"""The ONNX Runtime INT8 layout of a QAT/PTQ QDQ graph (``export_onnx(..., calib_batches)``).

ONNX Runtime's CPU QDQ transformers (onnxruntime/core/optimizer/qdq_transformer/) turn
``DQ(x), DQ(w) -> Conv -> Q`` into one integer QLinearConv only when the Conv's output is
read by that Q alone; ``Relu -> Q`` is folded only when the Q's zero point is the type
minimum (uint8 0); a Q moves backward across MaxPool / Reshape / Transpose / Slice by
itself, not across Resize, Concat or Add. Paddle's export quantizes conv *inputs*, so most
conv outputs reach a Relu, Add, Concat or Resize with no Q after them, and ONNX Runtime runs
dequantize + float conv, slower than FP32. Three rewrites give every conv an integer kernel:

1. every activation quantizer of a tensor that is provably non-negative (a Relu output, or
   pools / linear resizes / concats of such) becomes uint8 with zero point 0 and scale
   ``s * 127 / 255``: QAT's clip range [0, 127 s] with 255 levels, as Paddle's oneDNN
   runs unsigned tensors; several quantizers of one tensor become one (the largest scale);
2. float readers of a quantized tensor read its dequantized value instead, so the tensor's
   producer feeds the Q alone;
3. conv (or conv + Relu) outputs that still have no quantizer get a uint8 Q/DQ pair whose
   range is calibrated on a few images (min/max). Paddle's own output scales cannot be
   used: QAT observes a conv's output before its BatchNorm, which the ONNX export folds.
4. pools, concats, adds and resizes whose inputs are all dequantized get a Q/DQ pair after
   them too (calibrated; a resize takes its input's scale), so ONNX Runtime runs them as
   QLinearAveragePool / QLinearConcat / QLinearAdd or on uint8: the tensors between the
   integer convs stay uint8 instead of float (4x the bytes, the part of an INT8 run that
   slows most when the machine's memory bandwidth is shared). Sigmoid and Mul are left in
   float: quantizing them (attention gates) did not run faster.
Conv biases whose input scale changed are re-quantized to ``input_scale x weight_scale``,
without which ONNX Runtime silently keeps the conv in float.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .onnx_backend import ort_session
from .onnx_graph import constants, consumers, drop_unused, producers, toposort

# ops ONNX Runtime moves a QuantizeLinear backward across on its own
_Q_PROPAGATES = {"MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice"}
# step 4's ops (the module doc)
FUSED_OPS = ("AveragePool", "GlobalAveragePool", "Concat", "Resize", "Add")
# ops whose output is quantized like their input (ONNX Runtime drops DQ -> op -> Q of one
# scale and runs the op on uint8)
_SAME_SCALE = {"Resize"}
# ops whose output is non-negative when their (data) inputs are
_KEEPS_NON_NEGATIVE = {"MaxPool", "AveragePool", "GlobalAveragePool", "Resize", "Concat"}


@dataclass
class OrtLayout:
    """What the rewrite changed (recorded in deploy.yaml as ``Deploy.onnx_int8_layout``)."""
    to_uint8_zero_point_0: int = 0
    merged_quantizers: int = 0
    rerouted_readers: int = 0
    calibrated_quantizers: int = 0
    requantized_biases: int = 0
    calibration_images: int = 0
    fused_ops: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"layout": "onnxruntime", **self.__dict__}


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.graph = model.graph
        self.refresh()

    def refresh(self) -> None:
        self.readers = consumers(self.graph)
        self.writer = producers(self.graph)
        self.consts = constants(self.graph)

    def add_const(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        self.consts[name] = np.asarray(value)
        return name

    def is_activation_q(self, node: onnx.NodeProto) -> bool:
        return node.op_type == "QuantizeLinear" and node.input[0] not in self.consts

    def non_negative(self, tensor: str, depth: int = 0) -> bool:
        node = self.writer.get(tensor)
        if node is None or depth > 50:
            return False
        if node.op_type == "Relu":
            return True
        if node.op_type == "DequantizeLinear":
            zp = self.consts.get(node.input[2]) if len(node.input) > 2 else None
            return zp is not None and zp.dtype == np.uint8 and bool(np.all(zp == 0))
        if node.op_type == "Resize" and _attr(node, "mode", b"nearest") == b"cubic":
            return False  # cubic interpolation overshoots below zero
        if node.op_type in _KEEPS_NON_NEGATIVE:
            data = node.input if node.op_type == "Concat" else node.input[:1]
            return all(self.non_negative(t, depth + 1) for t in data)
        return False

    def readers_of(self, tensor: str) -> list[onnx.NodeProto]:
        return self.readers.get(tensor, [])


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _rename_input(node: onnx.NodeProto, old: str, new: str) -> None:
    for i, name in enumerate(node.input):
        if name == old:
            node.input[i] = new


def unsigned_non_negative(model: onnx.ModelProto, stats: OrtLayout) -> None:
    """Step 1 (see the module doc)."""
    g = _Graph(model)
    by_tensor: dict[str, list[onnx.NodeProto]] = {}
    for node in g.graph.node:
        if g.is_activation_q(node):
            by_tensor.setdefault(node.input[0], []).append(node)
    for tensor, quantizers in by_tensor.items():
        def scale_of(q):
            return float(np.max(g.consts[q.input[1]]))

        keep = max(quantizers, key=scale_of)
        for q in quantizers:
            if q is keep:
                continue
            for dq in g.readers_of(q.output[0]):
                dq.input[0], dq.input[1] = keep.output[0], keep.input[1]
                if len(dq.input) > 2:
                    dq.input[2] = keep.input[2]
            g.graph.node.remove(q)
            stats.merged_quantizers += 1
        if len(keep.input) < 3 or not g.non_negative(tensor):
            continue
        zp = g.consts.get(keep.input[2])
        symmetric = zp is not None and ((zp.dtype == np.uint8 and np.all(zp == 128)) or
                                        (zp.dtype == np.int8 and np.all(zp == 0)))
        if not symmetric:
            continue
        scale = g.add_const(f"{tensor}.u8_scale",
                            np.array(scale_of(keep) * 127.0 / 255.0, dtype=np.float32))
        zero = g.add_const(f"{tensor}.u8_zero_point", np.array(0, dtype=np.uint8))
        g.refresh()
        for node in (keep, *g.readers_of(keep.output[0])):
            node.input[1], node.input[2] = scale, zero
        stats.to_uint8_zero_point_0 += 1
    drop_unused(g.graph)


def reroute_float_readers(model: onnx.ModelProto, stats: OrtLayout) -> None:
    """Step 2 (see the module doc)."""
    g = _Graph(model)
    for q in list(g.graph.node):
        if not g.is_activation_q(q):
            continue
        dqs = [d for d in g.readers_of(q.output[0]) if d.op_type == "DequantizeLinear"]
        if not dqs:
            continue
        for reader in g.readers_of(q.input[0]):
            if reader is not q:
                _rename_input(reader, q.input[0], dqs[0].output[0])
                stats.rerouted_readers += 1


def unquantized_conv_outputs(model: onnx.ModelProto) -> list[str]:
    """The conv outputs (or their single Relu's outputs) no quantizer reads yet, except where
    ONNX Runtime will move a quantizer up to them across MaxPool / Reshape / ... itself."""
    g = _Graph(model)
    tensors = []
    for conv in g.graph.node:
        if conv.op_type != "Conv":
            continue
        tensor = conv.output[0]
        readers = g.readers_of(tensor)
        if len(readers) == 1 and readers[0].op_type == "Relu":
            tensor = readers[0].output[0]
        if any(g.is_activation_q(r) for r in g.readers_of(tensor)):
            continue
        last, moved = tensor, False
        while len(g.readers_of(last)) == 1 and g.readers_of(last)[0].op_type in _Q_PROPAGATES:
            last, moved = g.readers_of(last)[0].output[0], True
        if moved and any(g.is_activation_q(r) for r in g.readers_of(last)):
            continue
        tensors.append(tensor)
    return tensors


def tensor_ranges(model: onnx.ModelProto, tensors: list[str],
                  batches: Iterable[np.ndarray]) -> dict[str, tuple[float, float]]:
    """min / max of ``tensors`` over ``batches``, run in ONNX Runtime without optimization."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    for t in tensors:
        if t not in outputs:
            probe.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    session = ort_session(probe.SerializeToString(), optimize=False)
    feed = session.get_inputs()[0].name
    low = dict.fromkeys(tensors, np.inf)
    high = dict.fromkeys(tensors, -np.inf)
    for batch in batches:
        for t, value in zip(tensors, session.run(tensors, {feed: batch})):
            low[t], high[t] = min(low[t], float(value.min())), max(high[t], float(value.max()))
    return {t: (low[t], high[t]) for t in tensors}


def fusable_outputs(model: onnx.ModelProto, op_types: Iterable[str]) -> list[str]:
    """Outputs of ``op_types`` nodes whose data inputs are all dequantized and whose output
    no quantizer reads yet, in graph order (a node counts its inputs as dequantized when an
    earlier node of the list feeds it): with a Q/DQ pair after it, ONNX Runtime runs such a
    node as its QLinear form (QLinearAdd, QLinearConcat, ...) and the tensors between integer
    kernels stay uint8, a quarter of the float bytes."""
    op_types = set(op_types)
    toposort(model.graph)
    g = _Graph(model)
    dequantized = {n.output[0] for n in g.graph.node if n.op_type == "DequantizeLinear"}
    tensors = []
    for node in g.graph.node:
        if node.op_type not in op_types:
            continue
        data = [t for t in (node.input if node.op_type in ("Concat", "Add", "Mul")
                            else node.input[:1]) if t]
        out = node.output[0]
        readers = g.readers_of(out)
        if len(readers) == 1 and readers[0].op_type == "Relu":
            out = readers[0].output[0]  # op + Relu + Q is one QLinear kernel, as for convs
        if not all(t in dequantized for t in data) or any(
                g.is_activation_q(r) for r in g.readers_of(out)):
            continue
        if node.op_type in _SAME_SCALE and not all(
                r.op_type in op_types for r in g.readers_of(out)):
            continue  # e.g. the last Resize before ArgMax: a uint8 copy would tie classes
        tensors.append(out)
        dequantized.add(out)
    return tensors


def calibrated_output_quantizers(model: onnx.ModelProto, tensors: list[str],
                                 batches: list[np.ndarray], stats: OrtLayout) -> None:
    """A uint8 Q/DQ pair after each of ``tensors``, its range calibrated (min/max) on
    ``batches``; its readers read the dequantized value (steps 3 and 4)."""
    if not tensors:
        return
    ranges = tensor_ranges(model, tensors, batches)
    g = _Graph(model)
    for t in tensors:
        source = g.writer.get(t)
        source = g.writer.get(source.input[0]) if source.op_type in _SAME_SCALE else None
        if source is not None and source.op_type == "DequantizeLinear" and len(
                source.input) > 2:
            # ONNX Runtime then drops the pair and resizes the uint8 tensor (a linear
            # resize stays inside its input's range: nothing to calibrate)
            scale, zero = source.input[1], source.input[2]
        else:
            low, high = ranges[t]
            non_negative = g.non_negative(t)
            low = 0.0 if non_negative else min(low, 0.0)
            high = max(high, 0.0)
            step = max(high - low, 1e-8) / 255.0
            zero_point = 0 if non_negative else int(np.clip(np.rint(-low / step), 0, 255))
            scale = g.add_const(f"{t}.calib_scale", np.array(step, dtype=np.float32))
            zero = g.add_const(f"{t}.calib_zero_point", np.array(zero_point, dtype=np.uint8))
        q = helper.make_node("QuantizeLinear", [t, scale, zero], [f"{t}.calib_q"],
                             name=f"{t}.calib_q")
        dq = helper.make_node("DequantizeLinear", [q.output[0], scale, zero],
                              [f"{t}.calib_dq"], name=f"{t}.calib_dq")
        for reader in g.readers_of(t):
            _rename_input(reader, t, dq.output[0])
        g.graph.node.extend([q, dq])  # put in order by toposort()
        stats.calibrated_quantizers += 1


def requantize_conv_biases(model: onnx.ModelProto, stats: OrtLayout) -> None:
    """An int32 conv bias must be quantized with ``input_scale x weight_scale`` for
    QLinearConv; re-quantize those whose input scale step 1 changed (same float bias up to
    int32 rounding)."""
    g = _Graph(model)
    for conv in g.graph.node:
        if conv.op_type != "Conv" or len(conv.input) < 3:
            continue
        dx, dw, db = (g.writer.get(name) for name in conv.input[:3])
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in (dx, dw, db)):
            continue
        sx, sw = g.consts.get(dx.input[1]), g.consts.get(dw.input[1])
        qb, sb = g.consts.get(db.input[0]), g.consts.get(db.input[1])
        if any(v is None for v in (sx, sw, qb, sb)):
            continue
        zb = g.consts.get(db.input[2]) if len(db.input) > 2 else None
        want = (np.float32(sx) * sw.astype(np.float32)).astype(np.float32)
        if np.allclose(sb, want, rtol=1e-6, atol=0):
            continue
        bias = (qb.astype(np.int64) - (0 if zb is None else zb.astype(np.int64))) * sb
        requantized = np.clip(np.rint(bias / want), -2**31, 2**31 - 1).astype(np.int32)
        db.input[0] = g.add_const(f"{conv.output[0]}.bias_q", requantized)
        db.input[1] = g.add_const(f"{conv.output[0]}.bias_scale", want)
        if len(db.input) > 2:
            db.input[2] = g.add_const(f"{conv.output[0]}.bias_zero_point",
                                      np.zeros_like(requantized))
        stats.requantized_biases += 1
    drop_unused(g.graph)


def onnxruntime_int8_layout(model: onnx.ModelProto, batches: list[np.ndarray],
                            fuse_ops: Iterable[str] = FUSED_OPS) -> OrtLayout:
    """Rewrite ``model`` (a QDQ graph from ``export_onnx``) in place into the layout ONNX
    Runtime runs with integer kernels; ``batches`` (preprocessed NCHW float32 inputs)
    calibrate the conv outputs that had no quantizer and the outputs of ``fuse_ops``."""
    fuse_ops = tuple(fuse_ops)
    stats = OrtLayout(calibration_images=sum(len(b) for b in batches), fused_ops=list(fuse_ops))
    unsigned_non_negative(model, stats)
    reroute_float_readers(model, stats)
    calibrated_output_quantizers(model, unquantized_conv_outputs(model), batches, stats)
    reroute_float_readers(model, stats)  # the new Relu quantizers free more readers
    if fuse_ops:
        calibrated_output_quantizers(model, fusable_outputs(model, fuse_ops), batches, stats)
    requantize_conv_biases(model, stats)
    toposort(model.graph)
    return stats


def onnxruntime_op_counts(onnx_file, cpu_threads: int = 1) -> dict[str, int]:
    """Op types of the graph ONNX Runtime actually runs (after all its optimizations, read
    back through ``SessionOptions.optimized_model_filepath``): QLinearConv counts the convs
    that run as integer kernels, Conv the ones that stayed in float."""
    import tempfile
    from collections import Counter
    from pathlib import Path

    if not Path(onnx_file).is_file():
        raise FileNotFoundError(f"{onnx_file}: no such ONNX file")
    with tempfile.TemporaryDirectory(prefix="segq_ort_") as tmp:
        optimized = str(Path(tmp) / "optimized.onnx")
        ort_session(onnx_file, cpu_threads, optimized_model_filepath=optimized)
        graph = onnx.load(optimized).graph
    return dict(Counter(node.op_type for node in graph.node))


INTEGER_CONVS = ("QLinearConv", "ConvInteger")


def conv_kernels(op_counts: dict[str, int]) -> tuple[int, int]:
    """(integer, float) convs among :func:`onnxruntime_op_counts`: float ones include ONNX
    Runtime's fused forms (FusedConv, NCHWc Conv)."""
    integer = sum(op_counts.get(op, 0) for op in INTEGER_CONVS)
    floating = sum(n for op, n in op_counts.items()
                   if op.endswith("Conv") and op not in INTEGER_CONVS)
    return integer, floating
