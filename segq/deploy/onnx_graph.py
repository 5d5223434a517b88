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
