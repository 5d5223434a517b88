"""Convert an export (legacy ``.pdmodel``) to ONNX with paddle2onnx, and repair what the
pinned paddle2onnx 1.3.1 gets wrong.

- Adaptive average pooling whose input size is not a multiple of its output size (PP-LiteSeg's
  and PSPNet's pyramid pooling at 360x480) comes out as a plain ``AveragePool``, a different
  function. Each such node is rebuilt exactly as two MatMuls with constant bin-averaging
  matrices, which needs the fixed H and W the export was traced with.
- A QAT model's weights come out as float tensors quantized at run time
  (``float -> QuantizeLinear -> DequantizeLinear``), so the INT8 file would be no smaller than
  the FP32 one. The constant ``QuantizeLinear`` is folded into an INT8 initializer: the same
  values, a quarter of the bytes.
- Paddle writes a quantize/dequantize pair on every quantized layer's output (its training-time
  observer); executed, it rounds values QAT never rounded, which lowered PP-LiteSeg-T's CamVid
  mIoU under ONNX Runtime in one check. Pairs that feed no quantized op are removed.
- Symmetric INT8 activations are re-expressed as UINT8 with zero point 128 (identical values),
  the activation type ONNX Runtime's x86 INT8 kernels take.

The ONNX file is written next to the Paddle files, and ``deploy.yaml`` names it
(``Deploy.onnx``), so the ONNX Runtime and OpenVINO backends find it through the export.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .deploy_file import WEIGHT_ONLY, DeployInfo, is_weight_only, load_deploy_info, set_onnx_file
from .onnx_graph import constants, consumers, drop_unused

ONNX_FILE = "model.onnx"
OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear need 13


@dataclass(frozen=True)
class AdaptivePool:
    output: str               # the Paddle variable (and ONNX tensor) it writes
    size: tuple[int, int]     # output H, W
    in_hw: tuple[int, int]    # input H, W as the program records them (-1: dynamic)


def adaptive_avg_pools(model_file: str | os.PathLike) -> list[AdaptivePool]:
    """The adaptive average ``pool2d`` ops of a legacy Paddle program."""
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()
    program.ParseFromString(Path(model_file).read_bytes())
    pools = []
    for block in program.blocks:
        dims = {v.name: list(v.type.dense_tensor.tensor.dims) for v in block.vars}
        for op in block.ops:
            if op.type != "pool2d":
                continue
            attrs = {a.name: a for a in op.attrs}
            if not attrs["adaptive"].b or attrs["pooling_type"].s != "avg":
                continue
            out = next(o.arguments[0] for o in op.outputs if o.parameter == "Out")
            x = next(i.arguments[0] for i in op.inputs if i.parameter == "X")
            in_hw = tuple(dims.get(x, [-1, -1])[-2:])
            pools.append(AdaptivePool(out, tuple(attrs["ksize"].ints), in_hw))
    return pools


def bin_average_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``[out, in]`` rows averaging bin i = [floor(i*in/out), ceil((i+1)*in/out)), Paddle's
    adaptive pooling bins."""
    m = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = math.ceil((i + 1) * in_size / out_size)
        m[i, start:end] = 1.0 / (end - start)
    return m


def replace_adaptive_pools(model: onnx.ModelProto, pools: list[AdaptivePool]) -> int:
    """Rebuild every adaptive pool whose input size is not a multiple of its output size
    as ``Ah @ x @ Aw^T``; returns how many were rebuilt. Input sizes come from the Paddle
    program: ONNX shape inference divides by the zero strides paddle2onnx writes for small
    maps and kills the process (SIGFPE)."""
    by_output = {p.output: p for p in pools}
    graph = model.graph
    replaced = 0
    for node in list(graph.node):
        pool = by_output.get(node.output[0]) if node.output else None
        if pool is None:
            continue
        if min(pool.in_hw) < 1:
            raise ValueError(f"adaptive pool {pool.output}: its input has no fixed H, W "
                             f"({list(pool.in_hw)}); export with a fixed --input_shape")
        (h, w), (oh, ow) = pool.in_hw, pool.size
        if h % oh == 0 and w % ow == 0:
            continue  # paddle2onnx's AveragePool with kernel = stride = in/out is exact
        rows = numpy_helper.from_array(bin_average_matrix(h, oh), f"{pool.output}.rows")
        cols = numpy_helper.from_array(bin_average_matrix(w, ow).T.copy(),
                                       f"{pool.output}.cols")
        graph.initializer.extend([rows, cols])
        mid = f"{pool.output}.pooled_w"
        new = [helper.make_node("MatMul", [node.input[0], cols.name], [mid],
                                name=f"{pool.output}.matmul_w"),
               helper.make_node("MatMul", [rows.name, mid], [node.output[0]],
                                name=f"{pool.output}.matmul_h")]
        position = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, n in enumerate(new):
            graph.node.insert(position + offset, n)
        replaced += 1
    return replaced


def quantize_linear(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                    axis: int) -> np.ndarray:
    """ONNX ``QuantizeLinear``: saturate(round_half_even(x / scale) + zero_point)."""
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    info = np.iinfo(zero_point.dtype)
    q = np.rint(x.astype(np.float32) / scale) + zero_point.astype(np.int32)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def fold_weight_quantizers(model: onnx.ModelProto) -> int:
    """Replace each ``QuantizeLinear`` of a constant by its INT8 result; returns how many."""
    graph = model.graph
    consts = constants(graph)
    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3:
            continue
        if not all(name in consts for name in node.input[:3]):
            continue  # an activation: quantized at run time
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        q = quantize_linear(consts[node.input[0]], consts[node.input[1]],
                            consts[node.input[2]], axis)
        graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    drop_unused(graph)
    return len(folded)


QUANTIZED_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}


def strip_output_quantizers(model: onnx.ModelProto) -> int:
    """Remove the activation quantize/dequantize pairs that feed no quantized op; returns
    how many. Paddle's export writes one on the output of every quantized layer (its
    training-time output observer), so a float op after a conv (ReLU, resize, sigmoid)
    would read a value QAT never rounded; only the quantized layers' own input pairs
    describe the trained model."""
    graph = model.graph
    consts = constants(graph)
    readers_of = consumers(graph)
    graph_outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    dropped = []
    for q in graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] in consts:
            continue
        dqs = readers_of.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
            continue
        readers = [r for d in dqs for r in readers_of.get(d.output[0], [])]
        if any(r.op_type in QUANTIZED_OPS for r in readers) or any(
                d.output[0] in graph_outputs for d in dqs):
            continue
        for d in dqs:
            rename[d.output[0]] = q.input[0]
        dropped += [q, *dqs]
    for node in graph.node:
        for i, name in enumerate(node.input):
            while name in rename:  # a pair may read another removed pair's output
                name = rename[name]
            node.input[i] = name
    for node in dropped:
        graph.node.remove(node)
    drop_unused(graph)
    return sum(n.op_type == "QuantizeLinear" for n in dropped)


def activations_to_uint8(model: onnx.ModelProto) -> int:
    """Re-express symmetric INT8 activation quantizers (zero point 0) as UINT8 with zero
    point 128: the same rounding and the same dequantized values, shifted by 128. ONNX
    Runtime's x86 INT8 kernels take u8 activations with s8 weights; with s8 activations it
    falls back to slow paths. Returns how many quantizers changed."""
    graph = model.graph
    consts = constants(graph)
    readers_of = consumers(graph)
    shifted = 0
    shifted_zero_points: dict[str, str] = {}
    for q in graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] in consts or len(q.input) < 3:
            continue
        zp = consts.get(q.input[2])
        if zp is None or zp.dtype != np.int8 or np.any(zp != 0):
            continue
        dqs = readers_of.get(q.output[0], [])
        if any(d.op_type != "DequantizeLinear" or d.input[2] != q.input[2] for d in dqs):
            continue
        name = shifted_zero_points.get(q.input[2])
        if name is None:  # one uint8 zero point per int8 one (quantizers may share them)
            name = shifted_zero_points[q.input[2]] = f"{q.input[2]}.as_uint8"
            graph.initializer.append(numpy_helper.from_array(
                np.full(zp.shape, 128, dtype=np.uint8), name))
        for node in (q, *dqs):
            node.input[2] = name
        shifted += 1
    drop_unused(graph)
    return shifted


def _paddle2onnx(deploy: DeployInfo, out_file: Path, opset: int) -> onnx.ModelProto:
    import paddle2onnx

    log = io.StringIO()
    # paddle2onnx prints its progress; it may also print an error and still return
    with contextlib.redirect_stdout(log):
        paddle2onnx.export(str(deploy.model_file), str(deploy.params_file),
                           save_file=str(out_file), opset_version=opset,
                           auto_upgrade_opset=False, verbose=False, enable_onnx_checker=True,
                           deploy_backend="onnxruntime")
    if not out_file.is_file() or out_file.stat().st_size == 0:
        raise RuntimeError(f"paddle2onnx wrote no ONNX model for {deploy.model_file}:\n"
                           f"{log.getvalue()[-2000:]}")
    return onnx.load(str(out_file))


def export_onnx(model_dir: str | os.PathLike, opset: int = OPSET,
                calib_batches: list[np.ndarray] | None = None) -> Path:
    """Write ``model_dir/model.onnx`` from the Paddle export in ``model_dir`` (FP32, or a
    QAT export, which becomes a QDQ graph with INT8 weights) and name it in deploy.yaml.
    A weight-only export (slim/ptq.py --weight_only) is refused.

    With ``calib_batches`` (a few preprocessed inputs) an INT8 graph is rewritten into the
    layout ONNX Runtime runs with integer kernels (:mod:`segq.deploy.onnx_qdq`), recorded
    in deploy.yaml as ``Deploy.onnx_int8_layout``; an FP32 export ignores them.

    The export must have a fixed H and W (``--input_shape N C H W``; N may be -1):
    adaptive pooling is only expressible in ONNX for a known input size.
    """
    deploy = load_deploy_info(model_dir, require_onnx=False)  # it may be what is re-made
    if is_weight_only(deploy.quant):
        # paddle2onnx 1.3.1 writes Convs reading its INT8 weights as they are, which ONNX
        # Runtime rejects as an invalid model ("Type 'tensor(int8)' ... of operator (Conv)")
        raise ValueError(f"{deploy.deploy_file} is a weight-only export (INT8 weights, float "
                         f"inference; Quant.method {WEIGHT_ONLY}), which has no ONNX form: "
                         f"the ONNX path takes the FP32 or an INT8 export (export.py, "
                         f"slim/qat_export.py, or slim/ptq.py without --weight_only)")
    shape = deploy.input_shape
    if shape is None or shape[2] == -1 or shape[3] == -1:
        raise ValueError(f"{deploy.deploy_file}: ONNX export needs a fixed input H and W, "
                         f"got Deploy.input_shape {shape}; export with --input_shape "
                         f"N C H W (N may be -1)")
    target = deploy.model_dir / ONNX_FILE
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=deploy.model_dir) as tmp:
        tmp_file = Path(tmp) / ONNX_FILE
        model = _paddle2onnx(deploy, tmp_file, opset)
        replace_adaptive_pools(model, adaptive_avg_pools(deploy.model_file))
        fold_weight_quantizers(model)
        strip_output_quantizers(model)
        activations_to_uint8(model)
        layout = None
        if calib_batches and deploy.quant is not None:
            from .onnx_qdq import onnxruntime_int8_layout

            layout = onnxruntime_int8_layout(model, calib_batches).as_dict()
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp_file))
        os.replace(tmp_file, target)
    set_onnx_file(deploy.model_dir, ONNX_FILE, layout)
    return target
