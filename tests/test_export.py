"""Export every registered model in the legacy format and run it under Paddle Inference
(oneDNN), comparing with the dygraph model; deploy.yaml content; atomic writes."""
import re

import numpy as np
import paddle
import pytest
import yaml

import segq.models  # noqa: F401  (registers models)
from segq.deploy import export as export_mod
from segq.deploy.export import ExportOptions, ModelWriter, argmax_channels, export_inference_model
from segq.deploy.paddle_inference import PaddleInferenceModel
from segq.registry import MODELS
from tests.zoo import build_test_model, trained_like

NUM_CLASSES = 5


def dygraph_logits(model, x):
    with paddle.no_grad():
        return model(paddle.to_tensor(x))[0].numpy()


@pytest.fixture(scope="module", params=MODELS.names())
def model(request):
    return trained_like(request.param, NUM_CLASSES)


def test_argmax_at_fixed_shape_matches_dygraph(model, tmp_path):
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 96)).astype("float32")
    out_dir = export_inference_model(model, tmp_path / "fixed",
                                     ExportOptions(input_shape=[1, 3, 64, 96]),
                                     deploy_transforms=[{"type": "Normalize"}])
    pred = PaddleInferenceModel(out_dir, use_mkldnn=True).run(x)
    assert pred.shape == (1, 64, 96) and pred.dtype == np.int32
    agreement = (pred == dygraph_logits(model, x).argmax(axis=1)).mean()
    assert agreement >= 0.999
    # an FP32 export has no quantized ops: an INT8 run would be FP32 under an INT8 label
    with pytest.raises(ValueError, match="no 'Quant:' section"):
        PaddleInferenceModel(out_dir, use_mkldnn=True, int8=True)

    info = yaml.safe_load((out_dir / "deploy.yaml").read_text())
    assert info == {"Deploy": {
        "model": "model.pdmodel", "params": "model.pdiparams",
        "transforms": [{"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3}],
        "input_shape": [1, 3, 64, 96], "output_op": "argmax", "output_dtype": "int32"}}


def test_argmax_before_resize_is_the_low_res_argmax_upsampled(model, tmp_path):
    x = np.random.default_rng(2).normal(size=(1, 3, 64, 96)).astype("float32")
    out_dir = export_inference_model(model, tmp_path / "low",
                                     ExportOptions(input_shape=[-1, 3, 64, 96],
                                                   argmax_before_resize=True))
    info = yaml.safe_load((out_dir / "deploy.yaml").read_text())["Deploy"]
    assert info["argmax_before_resize"] is True and info["output_op"] == "argmax"
    pred = PaddleInferenceModel(out_dir).run(x)
    model.resize_logits_to_input = False
    try:
        low = dygraph_logits(model, x).argmax(axis=1)[0]
    finally:
        del model.resize_logits_to_input
    # nearest upsampling by an integer factor repeats each low-res label (UNet: factor 1)
    fy, fx = 64 // low.shape[0], 96 // low.shape[1]
    ref = np.repeat(np.repeat(low, fy, axis=0), fx, axis=1)
    assert pred.shape == (1, 64, 96) and (pred[0] == ref).mean() >= 0.999
    # the model is left as it was: full-size logits again
    assert dygraph_logits(model, x).shape[-2:] == (64, 96)


def test_argmax_at_a_fraction_of_the_input_size(model, tmp_path):
    import paddle.nn.functional as F

    from segq.deploy import load_deploy_info

    x = np.random.default_rng(3).normal(size=(1, 3, 64, 96)).astype("float32")
    out_dir = export_inference_model(model, tmp_path / "half",
                                     ExportOptions(input_shape=[-1, 3, 64, 96],
                                                   argmax_before_resize=0.5))
    info = yaml.safe_load((out_dir / "deploy.yaml").read_text())["Deploy"]
    assert info["argmax_before_resize"] == 0.5
    assert load_deploy_info(out_dir).argmax_before_resize == 0.5
    pred = PaddleInferenceModel(out_dir).run(x)
    model.resize_logits_to_input = False
    try:
        low = dygraph_logits(model, x)
    finally:
        del model.resize_logits_to_input
    half = F.interpolate(paddle.to_tensor(low), [32, 48], mode="bilinear",
                         align_corners=False).numpy().argmax(axis=1)[0]
    ref = np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)
    assert pred.shape == (1, 64, 96) and (pred[0] == ref).mean() >= 0.999


@pytest.mark.parametrize("scale", [0.0, 1.0, 1.5, -0.5])
def test_argmax_scale_must_be_a_fraction(scale, tmp_path):
    with pytest.raises(ValueError, match="between 0 and 1"):
        export_inference_model(build_test_model(MODELS.names()[0], NUM_CLASSES), tmp_path,
                               ExportOptions(argmax_before_resize=scale))


def test_argmax_before_resize_needs_the_argmax_output(tmp_path):
    with pytest.raises(ValueError, match="needs the argmax output"):
        export_inference_model(build_test_model(MODELS.names()[0], NUM_CLASSES), tmp_path,
                               ExportOptions(without_argmax=True, argmax_before_resize=True))


def test_dynamic_shape_logits_match_dygraph_at_two_sizes(model, tmp_path):
    out_dir = export_inference_model(model, tmp_path / "dyn", ExportOptions(without_argmax=True))
    info = yaml.safe_load((out_dir / "deploy.yaml").read_text())["Deploy"]
    assert info["input_shape"] == [-1, 3, -1, -1]
    assert info["output_op"] == "none" and info["output_dtype"] == "float32"
    assert info["transforms"] == []
    predictor = PaddleInferenceModel(out_dir)
    rng = np.random.default_rng(1)
    for shape in [(2, 3, 64, 96), (1, 3, 50, 70)]:
        x = rng.normal(size=shape).astype("float32")
        ref = dygraph_logits(model, x)
        out = predictor.run(x)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


def test_softmax_output(model, tmp_path):
    out_dir = export_inference_model(model, tmp_path / "sm",
                                     ExportOptions(input_shape=[1, 3, 64, 96], with_softmax=True,
                                                   without_argmax=True))
    assert yaml.safe_load((out_dir / "deploy.yaml").read_text())["Deploy"]["output_op"] == "softmax"
    x = np.random.default_rng(2).normal(size=(1, 3, 64, 96)).astype("float32")
    prob = PaddleInferenceModel(out_dir).run(x)
    ref = paddle.nn.functional.softmax(paddle.to_tensor(dygraph_logits(model, x)), axis=1).numpy()
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(prob, ref, atol=1e-4)


def test_argmax_channels_agrees_with_numpy():
    x = np.random.default_rng(0).normal(size=(2, 7, 5, 6)).astype("float32")
    out = argmax_channels(paddle.to_tensor(x))
    assert out.dtype == paddle.int32 and list(out.shape) == [2, 5, 6]
    np.testing.assert_array_equal(out.numpy(), x.argmax(axis=1))


def test_paddle_argmax_still_fails_under_the_legacy_exporter(tmp_path):
    """Pins why export.argmax_channels goes through legacy_ops.argmax: if this starts passing,
    paddle.argmax may be used directly."""
    class Argmax(paddle.nn.Layer):
        def forward(self, x):
            return paddle.argmax(x, axis=1)

    with pytest.raises(TypeError, match="must be Value, but got Variable"):
        export_mod.save_legacy_inference_model(Argmax(), tmp_path / "m", [1, 3, 8, 8])


def test_exported_argmax_is_numpys_first_index_of_the_maximum(tmp_path):
    """The exported label map (old arg_max op, dynamic N/H/W) equals numpy's argmax, ties
    included (integer-valued logits tie often; both take the first index)."""
    class Labels(paddle.nn.Layer):
        def forward(self, x):
            return argmax_channels(x)

    path = tmp_path / "argmax"
    export_mod.save_legacy_inference_model(Labels(), path, [-1, 6, -1, -1])
    from paddle.inference import Config, create_predictor

    from segq.deploy.paddle_inference import run_predictor

    config = Config()
    config.set_prog_file(f"{path}.pdmodel")  # no parameters: no params file
    config.enable_mkldnn()
    config.disable_glog_info()
    predictor = create_predictor(config)
    rng = np.random.default_rng(0)
    for shape in [(1, 6, 7, 9), (3, 6, 16, 5)]:
        x = rng.integers(-2, 3, size=shape).astype("float32")
        out = run_predictor(predictor, x)
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, x.argmax(axis=1))


def test_nn_sigmoid_fails_under_the_legacy_exporter_but_segq_sigmoid_exports(tmp_path):
    """Pins why models use segq.models.layers.Sigmoid instead of nn.Sigmoid (Paddle 3.3.1)."""
    from segq.models.layers import Sigmoid

    class Gate(paddle.nn.Layer):
        def __init__(self, act):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 3, 1)
            self.act = act

        def forward(self, x):
            y = self.conv(x)
            return y * self.act(y)

    with pytest.raises(TypeError, match="must be Value, but got Variable"):
        export_mod.save_legacy_inference_model(Gate(paddle.nn.Sigmoid()), tmp_path / "a",
                                               [1, 3, 8, 8])
    gate = Gate(Sigmoid())
    gate.eval()
    export_mod.save_legacy_inference_model(gate, tmp_path / "b", [-1, 3, -1, -1])
    x = np.random.default_rng(0).normal(size=(1, 3, 8, 8)).astype("float32")
    (tmp_path / "b.pdmodel").rename(tmp_path / "model.pdmodel")
    (tmp_path / "b.pdiparams").rename(tmp_path / "model.pdiparams")
    out = PaddleInferenceModel(tmp_path).run(x)
    np.testing.assert_allclose(out, gate(paddle.to_tensor(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_export_restores_training_mode_and_keeps_other_files(tmp_path):
    model = trained_like(MODELS.names()[0], NUM_CLASSES)
    model.train()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "config.yml").write_text("keep me")
    export_inference_model(model, out_dir, ExportOptions(input_shape=[1, 3, 32, 32]))
    assert model.training
    assert (out_dir / "config.yml").read_text() == "keep me"
    assert {"model.pdmodel", "model.pdiparams", "deploy.yaml"} <= {p.name for p in out_dir.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directory left


def test_interrupted_export_leaves_nothing_behind(tmp_path):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    model = build_test_model(MODELS.names()[0], NUM_CLASSES)
    with pytest.raises(KeyboardInterrupt):
        export_inference_model(model, tmp_path / "out", writer=ModelWriter(save=boom))
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_reported(tmp_path):
    model = build_test_model(MODELS.names()[0], NUM_CLASSES)
    with pytest.raises(ValueError, match="input_shape"):
        export_inference_model(model, tmp_path / "x", ExportOptions(input_shape=[3, 64, 64]))
    with pytest.raises(ValueError, match="'type'"):
        export_inference_model(model, tmp_path / "x", deploy_transforms=[{"size": 3}])
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing" / "model.pdmodel"))):
        PaddleInferenceModel(tmp_path / "missing")
    with pytest.raises(ValueError, match="use_mkldnn"):
        PaddleInferenceModel(tmp_path / "missing", use_mkldnn=False, int8=True)


def _export_and_run(layer, tmp_path, inputs):
    """Export ``layer`` (eval mode) at a dynamic shape and run it under oneDNN on ``inputs``."""
    layer.eval()
    export_mod.save_legacy_inference_model(layer, tmp_path / "model", [-1, 3, -1, -1])
    predictor = PaddleInferenceModel(tmp_path, use_mkldnn=True)
    for x in inputs:
        with paddle.no_grad():
            ref = layer(paddle.to_tensor(x))
        ref = (ref[0] if isinstance(ref, list) else ref).numpy()
        np.testing.assert_allclose(predictor.run(x), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_paddle_matmul_still_fails_under_the_legacy_exporter_but_legacy_ops_matmul_exports(
        tmp_path):
    """Pins why DANet/GCNet use segq.models.legacy_ops.matmul: if paddle.matmul starts building
    under the legacy exporter, the wrapper can go."""
    from segq.models import legacy_ops

    class Products(paddle.nn.Layer):
        def __init__(self, matmul):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 4, 1)
            self.matmul = matmul

        def forward(self, x):
            y = self.conv(x)
            f = paddle.reshape(y, (0, 4, -1))  # n, c, hw
            gram = self.matmul(f, f, transpose_y=True)  # n, c, c
            pixels = self.matmul(f, f, transpose_x=True)  # n, hw, hw
            out = self.matmul(gram, f) + self.matmul(f, pixels, transpose_y=True) * 0.1
            return paddle.reshape(out, paddle.shape(y))

    # kept alive to the end: Paddle's to_static cache can hand the half-traced program of a
    # collected layer to a new one at the same address (a KeyError on its parameter names)
    failing = Products(paddle.matmul)
    with pytest.raises(TypeError, match="must be Value, but got Variable"):
        export_mod.save_legacy_inference_model(failing, tmp_path / "m", [1, 3, 8, 8])
    paddle.seed(0)
    rng = np.random.default_rng(0)
    _export_and_run(Products(legacy_ops.matmul), tmp_path,
                    [rng.normal(size=s).astype("float32") for s in [(2, 3, 6, 8), (1, 3, 5, 7)]])
    del failing


def test_danet_attention_paths_export(tmp_path):
    """The parametrized export tests see DANet with gamma = 0 (its init), where both attention
    products are multiplied away; here they count."""
    model = trained_like("DANet", NUM_CLASSES)
    model.head.pam.gamma.set_value(paddle.to_tensor([0.5]))
    model.head.cam.gamma.set_value(paddle.to_tensor([0.05]))
    rng = np.random.default_rng(3)
    shapes = [(1, 3, 64, 96), (2, 3, 50, 70)]
    _export_and_run(model, tmp_path, [rng.normal(size=s).astype("float32") for s in shapes])


def program_op_types(model_file) -> set[str]:
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()
    program.ParseFromString(model_file.read_bytes())
    return {op.type for block in program.blocks for op in block.ops}


def test_channel_max_trains_through_topk_and_exports_as_reduce_max(tmp_path):
    """max_over_channels: topk in dygraph (paddle.max's channel backward is slow), the
    reduce_max op in exports (top_k_v2 is slow under Paddle Inference); same values."""
    from segq.models.layers import max_over_channels

    class ChannelMax(paddle.nn.Layer):
        def forward(self, x):
            return max_over_channels(x)

    x = np.random.default_rng(0).integers(-3, 4, size=(2, 6, 5, 7)).astype("float32")
    np.testing.assert_array_equal(max_over_channels(paddle.to_tensor(x)).numpy(),
                                  x.max(axis=1, keepdims=True))
    path = tmp_path / "model"
    export_mod.save_legacy_inference_model(ChannelMax(), path, [-1, 6, -1, -1])
    ops = program_op_types(tmp_path / "model.pdmodel")
    assert "reduce_max" in ops and "top_k_v2" not in ops
    from paddle.inference import Config, create_predictor

    from segq.deploy.paddle_inference import run_predictor

    config = Config()
    config.set_prog_file(str(tmp_path / "model.pdmodel"))
    config.enable_mkldnn()
    config.disable_glog_info()
    out = run_predictor(create_predictor(config), x)
    np.testing.assert_array_equal(out, x.max(axis=1, keepdims=True))


def test_deploy_yaml_states_every_transform_argument(tmp_path):
    """A config's bare ``Normalize`` is written with the mean and std it ran with, so tools
    outside segq need not guess; label-only arguments (set by the dataset) are left out;
    the file still loads through segq's readers."""
    from segq.config import load_config
    from segq.data.transforms import build_transforms
    from segq.deploy import load_deploy_info
    from segq.deploy.deploy_file import model_files
    from segq.deploy.workflows import export_model
    from tests.helpers import DEMO

    cfg = load_config(DEMO)
    out = export_model(cfg, build_test_model("BiSeNetV2", 4), tmp_path / "e")
    written = yaml.safe_load((out / "deploy.yaml").read_text())["Deploy"]["transforms"]
    assert {"type": "Normalize", "mean": [0.5] * 3, "std": [0.5] * 3} in written
    info = load_deploy_info(out)
    assert info.transforms == written and len(build_transforms(info.transforms)) == len(written)
    assert model_files(out) == (info.model_file, info.params_file)

    resolved = export_mod.resolved_transform
    assert resolved({"type": "Resize", "target_size": [96, 64]}) == {
        "type": "Resize", "target_size": [96, 64], "interp": "LINEAR", "keep_ratio": False}
    assert resolved({"type": "Padding", "target_size": 64}) == {
        "type": "Padding", "target_size": 64, "im_padding_value": 127.5}
    assert resolved({"type": "Normalize", "mean": [0.4] * 3})["std"] == [0.5] * 3
    with pytest.raises(KeyError, match="unknown transform type 'Normalise'; did you mean "
                                       "Normalize"):
        resolved({"type": "Normalise"})
