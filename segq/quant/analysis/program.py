"""An exported (legacy ``.pdmodel``) INT8 or FP32 program, opened for analysis: which layers
it quantizes and with which scales, runs that fetch any intermediate tensor, and variants in
which chosen layers read float again.

PaddleSlim's post-training export and segq's QAT export write the same quantize/dequantize
format: a quantized conv or matmul reads its weight as ``dequantize_linear(int8, scales)``
and its input as ``dequantize_linear(quantize_linear(x, s))``, and the output of every
quantized layer is quantize-dequantized too (the output scale oneDNN reads). Run by Paddle's
plain static executor these ops compute exactly the fake-quantized float model, which is
what the analysis compares with the FP32 program.

Each program gets a scope of its own (an INT8 and an FP32 program of the same model name
their weights alike) and runs in Paddle's legacy static mode; dynamic mode is restored after
every call.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...deploy.deploy_file import model_files, model_path_prefix, require_quantized_export
from ...deploy.export import legacy_static

# the ops that hold a quantizable layer's weight: slot of the weight, slot of the input
LAYER_OPS = {"conv2d": ("Filter", "Input"), "depthwise_conv2d": ("Filter", "Input"),
             "matmul_v2": ("Y", "X"), "matmul": ("Y", "X"), "mul": ("Y", "X")}
OUTPUT_SLOT = {"conv2d": "Output", "depthwise_conv2d": "Output", "matmul_v2": "Out",
               "matmul": "Out", "mul": "Out"}


@dataclass
class ProgramLayer:
    """One conv / matmul op with a weight, in program (= network) order."""
    position: int                      # among the program's layers
    op_index: int                      # in the global block
    op_type: str
    weight: str                        # the parameter's name (without ".quantized")
    stored: str                        # the tensor holding it (INT8 when quantized)
    output: str                        # the op's output tensor
    raw_input: str                     # the float tensor it reads, before any quantizer
    input_read: str                    # what it reads now (raw_input or its dequantized twin)
    weight_read: str                   # the filter tensor it reads now
    act_scale: float | None = None     # None: the input is not quantized
    act_bits: int | None = None
    weight_scales: np.ndarray | None = None   # None: the weight is float
    weight_bits: int | None = None
    weight_axis: int | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return self.weight_scales is not None


def check_int8_export(model_dir) -> None:
    """``--model_dir`` is an export with model files whose deploy.yaml says it is quantized
    (checked before anything is written)."""
    model_files(model_dir)
    require_quantized_export(model_dir, asked="--model_dir", fp32_instead="an INT8 export")


class ExportedProgram:
    """The program and weights of an export directory (``model_dir``), in a scope of their
    own. ``float_source``, the FP32 export of the same model, supplies the weights of layers
    a variant puts back in float (without it: the INT8 weights times their scales)."""

    def __init__(self, model_dir: str | os.PathLike,
                 float_source: "ExportedProgram | None" = None):
        import paddle

        self.model_dir = Path(model_dir)
        prefix = model_path_prefix(model_dir)
        self.scope = paddle.static.Scope()
        self.place = paddle.CPUPlace()
        with self._static():
            self.executor = paddle.static.Executor(self.place)
            self.program, feeds, fetches = paddle.static.load_inference_model(
                prefix, self.executor)
        self.feed = feeds[0]
        self.fetch = fetches[0].name
        self.output = self._model_output()
        self.layers = self._find_layers()
        self.float_source = float_source
        if float_source is not None and len(float_source.layers) != len(self.layers):
            raise ValueError(f"{self.model_dir} has {len(self.layers)} conv/matmul layers "
                             f"but the FP32 export {float_source.model_dir} has "
                             f"{len(float_source.layers)}: not the same network")

    @contextlib.contextmanager
    def _static(self):
        import paddle

        with legacy_static(), paddle.static.scope_guard(self.scope):
            yield

    def _producers(self, program=None) -> dict:
        block = (program or self.program).global_block()
        return {name: op for op in block.ops for name in op.output_arg_names}

    def _model_output(self) -> str:
        """The model's scores: the fetched tensor, or the input of the export's arg max,
        before any quantize/dequantize pair on it."""
        producer = self._producers()
        name = self.fetch
        op = producer.get(name)
        if op is not None and op.type == "arg_max":
            name = op.input("X")[0]
        return _behind_pair(producer, name) or name

    def _tensor(self, name: str) -> np.ndarray:
        var = self.scope.find_var(name)
        if var is None:
            raise ValueError(f"{self.model_dir}: tensor {name} is not in the params file")
        return np.array(var.get_tensor())

    def _find_layers(self) -> list[ProgramLayer]:
        block = self.program.global_block()
        producer = self._producers()
        layers = []
        with self._static():
            for index, op in enumerate(block.ops):
                if op.type not in LAYER_OPS:
                    continue
                w_slot, x_slot = LAYER_OPS[op.type]
                w, x = op.input(w_slot)[0], op.input(x_slot)[0]
                w_src = producer.get(w)
                w_deq = w_src is not None and w_src.type == "dequantize_linear"
                param = w_src.input("X")[0] if w_deq else w
                if not block.var(param).persistable:
                    continue  # activation x activation (attention): no weight
                out = op.output(OUTPUT_SLOT[op.type])[0]
                layer = ProgramLayer(len(layers), index, op.type, param.split(".quantized")[0],
                                     param, out, x, x, w, attrs=_attrs(op))
                if w_deq:
                    layer.weight_scales = self._tensor(w_src.input("Scale")[0]).astype(
                        np.float64).reshape(-1)
                    layer.weight_bits = int(w_src.attr("bit_length"))
                    layer.weight_axis = int(w_src.attr("quant_axis"))
                raw = _behind_pair(producer, x)
                # a float layer may read a pair all the same: the output quantizer of the
                # quantized layer before it, not a quantizer of its own
                if w_deq and raw is not None:
                    x_deq = producer[x]
                    layer.raw_input = raw
                    layer.act_scale = float(self._tensor(x_deq.input("Scale")[0]).reshape(-1)[0])
                    layer.act_bits = int(x_deq.attr("bit_length"))
                layers.append(layer)
        return layers

    def float_weight(self, layer: ProgramLayer) -> np.ndarray:
        """The weight ``layer`` computes with, in float32 (INT8 times its scales)."""
        with self._static():
            stored = self._tensor(layer.stored)
        if not layer.quantized:
            return stored.astype(np.float32)
        bound = 2 ** (layer.weight_bits - 1) - 1
        shape = [1] * stored.ndim
        if layer.weight_scales.size > 1:
            shape[layer.weight_axis % stored.ndim] = layer.weight_scales.size
        return (stored.astype(np.float64) * layer.weight_scales.reshape(shape) / bound
                ).astype(np.float32)

    def _float_weight_for(self, layer: ProgramLayer) -> np.ndarray:
        if self.float_source is None:
            return self.float_weight(layer)
        weight = self.float_source.float_weight(self.float_source.layers[layer.position])
        stored = list(self.program.global_block().var(layer.stored).shape)
        if list(weight.shape) != stored:
            raise ValueError(f"layer {layer.position} ({layer.weight}): the FP32 export's "
                             f"weight is {list(weight.shape)}, the INT8 export's {stored}")
        return weight

    # ------------------------------------------------------------------- variants
    def variant(self, float_layers=(), keep_quantized=None):
        """A copy of the program in which the layers at positions ``float_layers`` are left in
        float the way PaddleSlim's post-training quantizer leaves a ``skip_tensor_list``
        layer (what ``quant.skip_layers`` gives with slim/ptq.py): the layer computes with
        its FP32 weight, and its input and output keep the quantize/dequantize pairs of the
        tensors around it (the output scales oneDNN reads), except that an input straight
        from the model's feed is read in float. With ``keep_quantized`` (positions), every
        other quantizer is bypassed as well: only those layers' own input and weight
        quantizers remain and the rest of the network runs in float."""
        floats = set(float_layers)
        if keep_quantized is not None:
            floats |= {l.position for l in self.layers if l.position not in set(keep_quantized)}
        kept_ops = {l.op_index for l in self.layers if l.position not in floats}
        with self._static():
            program = self.program.clone()
            block = program.global_block()
            producer = self._producers(program)
            for layer in self.layers:
                if layer.position not in floats or not layer.quantized:
                    continue
                op = block.ops[layer.op_index]
                if layer.raw_input not in producer:  # the feed: no pair but this layer's
                    op._rename_input(layer.input_read, layer.raw_input)
                name = f"{layer.weight}@segq_float"
                weight = self._float_weight_for(layer)
                if not block.has_var(name):
                    block.create_var(name=name, shape=weight.shape, dtype="float32",
                                     persistable=True)
                self.scope.var(name).get_tensor().set(weight, self.place)
                op._rename_input(layer.weight_read, name)
                _mark_skipped(op)
            if keep_quantized is not None:
                _bypass_activation_quantizers(block, kept_ops)
        return program

    def run(self, batch: np.ndarray, fetch: list[str], program=None) -> list[np.ndarray]:
        with self._static():
            return self.executor.run(program or self.program, feed={self.feed: batch},
                                     fetch_list=list(fetch), scope=self.scope,
                                     return_numpy=True)

    def save(self, program, save_dir: str | os.PathLike, fetch: str | None = None) -> Path:
        """Write ``program`` (a variant) with its weights as ``save_dir/model.pdmodel`` and
        ``.pdiparams``, fetching the export's output (or the tensor ``fetch``)."""
        import paddle

        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        with self._static():
            block = program.global_block()
            paddle.static.save_inference_model(
                str(save_dir / "model"), [block.var(self.feed)],
                [block.var(fetch or self.fetch)],
                self.executor, program=program)
        return save_dir


def _mark_skipped(op) -> None:
    """Mark ``op`` as PaddleSlim marks an op of its ``skip_tensor_list``: oneDNN INT8 reads
    the marks, not the weight's dtype, and would otherwise run the op in INT8 anyway (its
    input still reads a quantize/dequantize pair), quantizing the float weight itself."""
    op._set_attr("skip_quant", 1)
    op._set_attr("op_namescope", "skip_quant")
    op._set_attr("with_quant_attr", True)
    if op.has_attr("quantization_type"):
        op._remove_attr("quantization_type")


def _bypass_activation_quantizers(block, kept_ops: set[int]) -> None:
    """Every op except those at ``kept_ops`` reads the float tensor behind any activation
    quantize/dequantize pair it reads."""
    producer = {name: op for op in block.ops for name in op.output_arg_names}
    for index, op in enumerate(block.ops):
        if index in kept_ops or op.type in ("quantize_linear", "dequantize_linear"):
            continue
        for name in list(op.input_arg_names):
            raw = _behind_pair(producer, name)
            if raw is not None:
                op._rename_input(name, raw)


def _behind_pair(producer: dict, name: str) -> str | None:
    """The float tensor behind ``name`` when ``name`` is ``dequantize_linear(quantize_linear(
    x))``, else None."""
    deq = producer.get(name)
    if deq is None or deq.type != "dequantize_linear":
        return None
    q = producer.get(deq.input("X")[0])
    return q.input("X")[0] if q is not None and q.type == "quantize_linear" else None


def _attrs(op) -> dict:
    keep = ("strides", "paddings", "dilations", "groups", "padding_algorithm", "data_format",
            "trans_x", "trans_y")
    return {a: op.attr(a) for a in keep if op.has_attr(a)}
