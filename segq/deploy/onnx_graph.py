"""Small helpers for reading and editing ONNX graphs (the export repairs and the ONNX
Runtime INT8 layout share them)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node that writes it."""
    return {name: node for node in graph.node for name in node.output}


def constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The values of the initializers and Constant nodes, by tensor name."""
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def drop_unused(graph: onnx.GraphProto) -> None:
    """Remove the initializers and Constant nodes nothing reads any more."""
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    for n in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(n)


def toposort(graph: onnx.GraphProto) -> None:
    """Order the nodes so every node comes after the producers of its inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"ONNX graph has a cycle or an input nothing writes: "
                             f"{rest[0].op_type} {rest[0].name}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


# ops that pass values through unchanged: a uint8 grid before them is still one after them
_VALUE_PRESERVING = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Identity"}


def _passes_grid(node: onnx.NodeProto) -> bool:
    if node.op_type == "Resize":  # nearest neighbour copies values, linear ones blend them
        modes = [a.s for a in node.attribute if a.name == "mode"]
        return modes in ([], [b"nearest"])
    return node.op_type in _VALUE_PRESERVING


def argmax_logit_path(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Every ArgMax node and the nodes between it and the op that computes its scores:
    resizes, layout ops and quantize / dequantize pairs (whatever a quantizer would touch
    on the way from the logits to the arg max)."""
    writer = producers(graph)
    path = []
    for node in graph.node:
        if node.op_type != "ArgMax":
            continue
        path.append(node)
        current = writer.get(node.input[0])
        while current is not None and (current.op_type in ("QuantizeLinear", "DequantizeLinear",
                                                           "Resize") or _passes_grid(current)):
            path.append(current)
            current = writer.get(current.input[0])
    return path


def argmax_quantizer(graph: onnx.GraphProto) -> tuple[str, str] | None:
    """``(float tensor, dequantized tensor)`` of the quantize / dequantize pair whose output
    an ArgMax reads (directly or through value-preserving ops), None if its scores are float.
    Quantized scores lie on a uint8 grid, so near-equal top classes tie and ArgMax gives the
    tie to the lowest class id."""
    writer = producers(graph)
    for node in graph.node:
        if node.op_type != "ArgMax":
            continue
        current = writer.get(node.input[0])
        while current is not None and _passes_grid(current):
            current = writer.get(current.input[0])
        if current is not None and current.op_type == "DequantizeLinear":
            quantize = writer.get(current.input[0])
            if quantize is not None and quantize.op_type == "QuantizeLinear":
                return quantize.input[0], current.output[0]
    return None
