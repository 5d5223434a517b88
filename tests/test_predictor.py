"""The deployment Predictor and deploy/python/infer.py: exported model -> label maps at each
image's size (equal to the dygraph model), batching, masks/overlays, INT8 exports, option
checks, and the GPU/TensorRT configuration as far as the CPU build of Paddle runs it."""
import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
import yaml
from paddle.inference import Config, PrecisionType, get_trt_compile_version
from PIL import Image

from segq.config import QuantConfig, load_config
from segq.data.transforms import build_transforms
from segq.deploy import Predictor, PredictorOptions, label_map, same_shape_batches, save_masks
from segq.deploy.deploy_file import model_files
from segq.deploy.export import ExportOptions, export_inference_model
from segq.deploy.paddle_backend import ShapeTunedRunner, configure_tensorrt, run_predictor
from segq.deploy.paddle_inference import PaddleInferenceModel
from segq.engine.evaluator import dygraph_label_fn
from segq.quant.qat import export_qat_model
from tests.helpers import DEMO
from tests.zoo import calibrated_qat, trained_like

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 5
SIZES = {"a": (64, 96), "b": (50, 70), "c": (64, 96)}  # name -> (h, w); a and c stack
CUDA = paddle.device.is_compiled_with_cuda()
TENSORRT = tuple(get_trt_compile_version()) != (0, 0, 0)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a == b).mean())


@pytest.fixture(scope="module")
def model():
    return trained_like("BiSeNetV2", NUM_CLASSES)


@pytest.fixture(scope="module")
def fp32_dir(model, tmp_path_factory):
    return export_inference_model(model, tmp_path_factory.mktemp("export") / "fp32",
                                  deploy_transforms=[{"type": "Normalize"}])


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {}
    for name, (h, w) in SIZES.items():
        paths[name] = root / f"{name}.png"
        assert cv2.imwrite(str(paths[name]), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return paths


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def dygraph_argmax(model, image: np.ndarray) -> np.ndarray:
    x = build_transforms([{"type": "Normalize"}])({"img": image}, None)["img"]
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x.transpose(2, 0, 1)[None].copy()))[0]
    return logits.numpy()[0].argmax(axis=0)


class Recorder:
    """Backend wrapper that records the batch shapes it runs."""

    def __init__(self, backend):
        self.backend, self.shapes = backend, []

    def run(self, batch):
        self.shapes.append(batch.shape)
        return self.backend.run(batch)


# ---------------------------------------------------------------- predictions
def test_predictions_equal_the_dygraph_argmax_at_each_image_size(model, fp32_dir, images):
    predictor = Predictor(fp32_dir / "deploy.yaml")
    preds = list(predictor.predict_files([images["a"], images["b"]]))
    for pred, name in zip(preds, "ab"):
        assert pred.path == images[name]
        assert pred.label_map.shape == SIZES[name] and pred.label_map.dtype == np.int32
        assert agreement(pred.label_map, dygraph_argmax(model, rgb(images[name]))) >= 0.999


def test_batch_size_2_equals_batch_size_1(fp32_dir, images):
    paths = [images["a"], images["c"], images["b"]]
    one = Predictor(fp32_dir, PredictorOptions(batch_size=1))
    two = Predictor(fp32_dir, PredictorOptions(batch_size=2))
    two.backend = Recorder(two.backend)
    for p1, p2 in zip(one.predict_files(paths), two.predict_files(paths), strict=True):
        np.testing.assert_array_equal(p1.label_map, p2.label_map)
    # a and c share a size and run together; b (another size) runs alone
    assert two.backend.shapes == [(2, 3, 64, 96), (1, 3, 50, 70)]


def test_score_export_with_resize_maps_back_like_dygraph_evaluation(model, images, tmp_path):
    transforms = [{"type": "Resize", "target_size": [64, 48]}, {"type": "Normalize"}]
    out_dir = export_inference_model(model, tmp_path / "scores",
                                     ExportOptions(without_argmax=True),
                                     deploy_transforms=transforms)
    predictor = Predictor(out_dir)
    reference = dygraph_label_fn(model)
    for name in "ab":
        image = rgb(images[name])
        pred = predictor.predict([image])[0]
        assert pred.shape == SIZES[name]
        assert agreement(pred, reference(predictor.preprocess(image))) >= 0.999


def test_label_map_undoes_resize_and_padding_of_class_ids():
    ids = np.arange(12, dtype=np.int32).reshape(3, 4)
    # innermost first: crop the padding back to 2x2, then resize to 4x6
    out = label_map(ids, [("resize", (4, 6)), ("padding", (2, 2))])
    assert out.shape == (4, 6) and set(np.unique(out)) == {0, 1, 4, 5}
    with pytest.raises(ValueError, match="unknown trans_info op 'rotate'"):
        label_map(ids, [("rotate", (1, 1))])


def test_same_shape_batches_keep_order_and_split_on_size_or_count():
    items = ["A", "A", "A", "B", "A"]
    assert list(same_shape_batches(items, lambda s: s, 2)) == [["A", "A"], ["A"], ["B"], ["A"]]
    assert list(same_shape_batches(items, lambda s: s, 1)) == [[s] for s in items]


def test_same_shape_batches_hand_over_what_they_hold_before_a_failure():
    """A full batch is yielded without reading ahead, and a partial one before the source's
    error: the images before an unreadable one are still predicted."""
    def source():
        yield from ["A", "A", "A"]
        raise ValueError("unreadable")

    got = []
    with pytest.raises(ValueError, match="unreadable"):
        for batch in same_shape_batches(source(), lambda s: s, 2):
            got.append(batch)
    assert got == [["A", "A"], ["A"]]
    pulled = []
    batches = same_shape_batches((pulled.append(i) or i for i in range(5)), lambda s: 0, 1)
    assert next(batches) == [0] and pulled == [0]


# ---------------------------------------------------------------- INT8 export
def test_int8_predictor_runs_a_qat_export(tmp_path, images):
    qat = calibrated_qat("BiSeNetV2", QuantConfig())
    out_dir = export_qat_model(load_config(DEMO), qat, tmp_path / "int8")
    image = rgb(images["a"])
    pred = Predictor(out_dir, PredictorOptions(precision="int8")).predict([image])[0]
    x = build_transforms([{"type": "Normalize"}])({"img": image}, None)["img"]
    direct = PaddleInferenceModel(out_dir, int8=True).run(x.transpose(2, 0, 1)[None])[0]
    np.testing.assert_array_equal(pred, direct)
    # precision takes effect: fp32 runs the same export's quantize ops in float instead
    # (on a random-weight model argmax margins are tiny, so the two visibly differ)
    fp32 = Predictor(out_dir, PredictorOptions(precision="fp32")).predict([image])[0]
    assert 0.5 < agreement(pred, fp32) < 1.0


def test_int8_needs_a_quantized_export(fp32_dir):
    with pytest.raises(ValueError, match="no 'Quant:' section"):
        Predictor(fp32_dir, PredictorOptions(precision="int8"))


# ---------------------------------------------------------------- deploy.yaml checks
def copy_export(src: Path, dst: Path, **deploy_changes) -> Path:
    shutil.copytree(src, dst)
    info = yaml.safe_load((dst / "deploy.yaml").read_text())
    info["Deploy"].update(deploy_changes)
    (dst / "deploy.yaml").write_text(yaml.safe_dump(info))
    return dst


def test_deploy_yaml_errors_name_the_file_and_key(fp32_dir, tmp_path):
    with pytest.raises(ValueError, match=r"deploy.yaml: Deploy.output_op must be one of"):
        Predictor(copy_export(fp32_dir, tmp_path / "op", output_op="max"))
    with pytest.raises(ValueError, match=r"Deploy.transforms must be a list"):
        Predictor(copy_export(fp32_dir, tmp_path / "tf", transforms={"type": "Normalize"}))
    (tmp_path / "other.yaml").write_text("Deploy: {}\n")
    with pytest.raises(ValueError, match="expected an export's deploy.yaml"):
        Predictor(tmp_path / "other.yaml")
    with pytest.raises(FileNotFoundError, match="deploy.yaml not found"):
        Predictor(tmp_path / "missing")


def test_fixed_input_shape_is_checked_before_running(fp32_dir, images, tmp_path):
    out_dir = copy_export(fp32_dir, tmp_path / "fixed", input_shape=[1, 3, 64, 96])
    with pytest.raises(ValueError, match="batch_size 2 exceeds the fixed batch dimension 1"):
        Predictor(out_dir, PredictorOptions(batch_size=2))
    predictor = Predictor(out_dir)
    assert predictor.predict([rgb(images["a"])])[0].shape == SIZES["a"]
    with pytest.raises(ValueError, match=r"fixes H=64 .*add a Resize"):
        predictor.predict([rgb(images["b"])])


# ---------------------------------------------------------------- options
@pytest.mark.parametrize("kwargs, message", [
    ({"device": "tpu"}, "device must be one of"),
    ({"precision": "bf16"}, "precision must be one of"),
    ({"precision": "fp16"}, "'fp16' runs through TensorRT and needs device 'gpu'"),
    ({"cpu_threads": 0}, "cpu_threads must be a positive int"),
    ({"batch_size": True}, "batch_size must be a positive int"),
    ({"min_subgraph_size": -1}, "min_subgraph_size must be a positive int"),
    ({"trt_shape_file": "s.pbtxt"}, "trt_shape_file .* needs device 'gpu'"),
    ({"device": "gpu", "trt_shape_file": ""}, "trt_shape_file must be a file path"),
])
def test_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PredictorOptions(**kwargs)


def test_valid_gpu_options():
    opts = PredictorOptions(device="gpu", precision="fp16", trt_shape_file="s.pbtxt")
    assert opts.batch_size == 1 and opts.min_subgraph_size == 3


# ---------------------------------------------------------------- GPU / TensorRT
class RecordingConfig:
    """Stands in for paddle.inference.Config: records (method, args, kwargs)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


@pytest.mark.parametrize("precision, mode", [
    ("fp32", PrecisionType.Float32), ("fp16", PrecisionType.Half), ("int8", PrecisionType.Int8)])
def test_tensorrt_config_calls(precision, mode):
    opts = PredictorOptions(device="gpu", precision=precision, batch_size=4,
                            min_subgraph_size=5)
    collect = configure_tensorrt(RecordingConfig(), opts, "s.pbtxt", collect_shapes=True)
    assert [c[0] for c in collect.calls] == ["enable_use_gpu", "disable_glog_info",
                                             "collect_shape_range_info"]
    assert collect.calls[-1][1] == ("s.pbtxt",)
    engine = configure_tensorrt(RecordingConfig(), opts, "s.pbtxt", collect_shapes=False)
    calls = {name: (args, kwargs) for name, args, kwargs in engine.calls}
    assert "collect_shape_range_info" not in calls
    trt = calls["enable_tensorrt_engine"][1]
    assert trt["precision_mode"] == mode and trt["use_calib_mode"] is False
    assert trt["max_batch_size"] == 4 and trt["min_subgraph_size"] == 5
    assert calls["enable_tuned_tensorrt_dynamic_shape"][0] == ("s.pbtxt", True)


@pytest.mark.skipif(CUDA, reason="checks the CPU build's behaviour")
def test_tensorrt_config_on_the_cpu_build(fp32_dir, tmp_path):
    opts = PredictorOptions(device="gpu", precision="fp16")
    files = [str(f) for f in model_files(fp32_dir)]
    shape_file = tmp_path / "s.pbtxt"
    # The collecting config builds: enable_use_gpu is a logged no-op on the CPU build.
    config = configure_tensorrt(Config(*files), opts, shape_file, collect_shapes=True)
    assert config.shape_range_info_collected()
    assert config.shape_range_info_path() == str(shape_file)
    assert not config.use_gpu()
    # The TensorRT call itself refuses on a build without TensorRT.
    with pytest.raises(RuntimeError, match="compile with TENSORRT"):
        configure_tensorrt(Config(*files), opts, shape_file, collect_shapes=False)
    with pytest.raises(ValueError, match="CPU build: use device 'cpu'"):
        Predictor(fp32_dir, opts)


def test_shape_ranges_are_collected_once_then_reused(fp32_dir, tmp_path):
    """ShapeTunedRunner's sequencing with CPU configs in place of the TensorRT ones."""
    files = [str(f) for f in model_files(fp32_dir)]
    shape_file = tmp_path / "tuned" / "s.pbtxt"
    built = []

    def make_config(collect_shapes: bool) -> Config:
        built.append(collect_shapes)
        config = Config(*files)
        config.disable_gpu()
        config.disable_glog_info()
        if collect_shapes:
            config.collect_shape_range_info(str(shape_file))
        return config

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype("float32")
    runner = ShapeTunedRunner(make_config, shape_file)
    assert built == [] and not shape_file.exists()
    out = runner.run(x)
    assert built == [True, False] and "shape_range_info" in shape_file.read_text()
    np.testing.assert_array_equal(out, PaddleInferenceModel(fp32_dir, use_mkldnn=False).run(x))
    np.testing.assert_array_equal(runner.run(x), out)
    assert built == [True, False]
    built.clear()
    np.testing.assert_array_equal(ShapeTunedRunner(make_config, shape_file).run(x), out)
    assert built == [False]  # the file exists: no second collection


def test_run_predictor_checks_the_batch_rank():
    with pytest.raises(ValueError, match=r"must be \[N, C, H, W\]"):
        run_predictor(None, np.zeros((3, 8, 8), np.float32))


# ---------------------------------------------------------------- masks and infer.py
def load_infer_script():
    spec = importlib.util.spec_from_file_location("infer", ROOT / "deploy/python/infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_infer_cli_writes_a_palette_mask_and_an_overlay_per_image(fp32_dir, images, tmp_path):
    infer = load_infer_script()
    image_dir = tmp_path / "in"
    (image_dir / "sub").mkdir(parents=True)
    shutil.copy(images["a"], image_dir / "a.png")
    shutil.copy(images["b"], image_dir / "sub" / "b.png")
    save_dir = tmp_path / "out"
    argv = ["--config", str(fp32_dir / "deploy.yaml"), "--image_path", str(image_dir),
            "--save_dir", str(save_dir), "--batch_size", "2"]
    assert infer.run_cli(infer.main, argv) == 0
    expected = Predictor(fp32_dir).predict([rgb(images["a"]), rgb(images["b"])])
    for stem, ref in (("a", expected[0]), ("sub/b", expected[1])):
        with Image.open(save_dir / f"{stem}_mask.png") as mask:
            assert mask.mode == "P"
            np.testing.assert_array_equal(np.array(mask), ref)
        overlay = cv2.imread(str(save_dir / f"{stem}_overlay.png"))
        assert overlay.shape == ref.shape + (3,)
    assert len(list(save_dir.rglob("*.png"))) == 4


@pytest.mark.parametrize("case, message", [
    ("no_deploy", "deploy.yaml not found"),
    ("no_image", "image path not found"),
    ("fp16_cpu", "'fp16' runs through TensorRT"),
])
def test_infer_cli_input_errors_exit_2(case, message, fp32_dir, images, tmp_path, capsys):
    infer = load_infer_script()
    config, image = str(fp32_dir / "deploy.yaml"), str(images["a"])
    extra = []
    if case == "no_deploy":
        config = str(tmp_path / "nowhere" / "deploy.yaml")
    elif case == "no_image":
        image = str(tmp_path / "missing.png")
    else:
        extra = ["--precision", "fp16"]
    argv = ["--config", config, "--image_path", image, "--save_dir", str(tmp_path / "o"),
            *extra]
    assert infer.run_cli(infer.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "o").exists()


def test_save_masks_rejects_ids_beyond_the_palette(tmp_path):
    from segq.deploy import Prediction

    pred = Prediction(None, np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 300, np.int32))
    with pytest.raises(ValueError, match="do not fit a 256-colour palette PNG"):
        save_masks([pred], tmp_path)
