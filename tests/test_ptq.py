"""Post-training quantization (segq.quant.ptq, slim/ptq.py): every algorithm gives an INT8
export that Paddle Inference runs close to FP32, every zoo network quantizes, and bad
calibration data fails before anything is written."""
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
import yaml

from segq import builders
from segq.builders import build_model_for
from segq.config import load_config
from segq.deploy.export import ExportOptions
from segq.deploy.paddle_inference import PaddleInferenceModel
from segq.deploy.workflows import evaluate_inference_model, export_model
from segq.quant.analysis.program import ExportedProgram
from segq.quant.analysis.report import quant_report
from segq.quant.calibration import CalibrationError, CalibrationSource, load_calibration_set
from segq.quant.exported_ops import weight_ops
from segq.quant.ptq import ALGOS, PTQOptions, ptq
from segq.registry import MODELS
from tests.helpers import DEMO, REPO, SMALL, cosine, tiny_config
from tests.zoo import build_test_model

SHAPE = [1, 3, 48, 64]


def demo_cfg(extra=()):
    return load_config(DEMO, [*SMALL, "iters=30", *extra])


def logits(model_dir, x, int8):
    return PaddleInferenceModel(str(model_dir), use_mkldnn=True, cpu_threads=2,
                                int8=int8).run(x)[0]


def test_every_algorithm_runs_in_int8_close_to_fp32(fp32_run, tmp_path):
    cfg = demo_cfg()
    results = ptq(cfg, str(fp32_run), PTQOptions(
        save_dir=str(tmp_path / "all"), algo="all", batch_size=4,
        export=ExportOptions(input_shape=SHAPE, without_argmax=True),
        source=CalibrationSource(calib_num=8)))
    assert [r.name for r in results] == list(ALGOS)
    fp32_dir = export_model(cfg, build_model_for(cfg, str(fp32_run)), str(tmp_path / "fp32"),
                            ExportOptions(input_shape=SHAPE, without_argmax=True))
    x = builders.build_dataset(cfg.val_dataset, "val_dataset")[0]["img"][None]
    ref = logits(fp32_dir, x, int8=False)
    for r in results:
        assert r.model_dir == tmp_path / "all" / r.name
        quant = yaml.safe_load((r.model_dir / "deploy.yaml").read_text())["Quant"]
        assert quant["method"] == "ptq" and quant["algo"] == r.name
        assert quant["calibration"]["num_images"] == 8 and quant["calibration"]["seconds"] > 0
        ops = weight_ops(r.model_dir)
        assert ops and all(op.weight_quantized for op in ops), r.name
        assert cosine(logits(r.model_dir, x, int8=True), ref) >= 0.98, r.name
        assert r.size_bytes < 0.35 * sum(f.stat().st_size for f in fp32_dir.glob("model.pd*"))
        assert r.miou is not None and 0.0 <= r.miou <= 1.0
    assert "| KL |" in (tmp_path / "all" / "comparison.md").read_text()


def test_bias_correction_and_skip_layers_are_recorded_and_applied(fp32_run, tmp_path):
    cfg = demo_cfg(["quant={skip_layers: [head.conv_1x1]}"])
    (result,) = ptq(cfg, str(fp32_run), PTQOptions(
        save_dir=str(tmp_path / "bc"), algo="abs_max", bias_correction=True, batch_size=4,
        export=ExportOptions(input_shape=SHAPE), source=CalibrationSource(calib_num=4)))
    quant = yaml.safe_load((result.model_dir / "deploy.yaml").read_text())["Quant"]
    assert quant["bias_correction"] is True and quant["skipped_layers"] == ["head.conv_1x1"]
    ops = weight_ops(result.model_dir)
    floats = [op for op in ops if not op.weight_quantized]
    assert len(floats) == 1 and len(ops) > 10  # the one skipped conv stays in float


def test_a_ptq_export_runs_under_onnxruntime_and_enters_the_benchmark_as_ptq(fp32_run, tmp_path):
    from segq.bench.deployment import load_exports, method_of
    from segq.deploy.onnx_backend import OnnxRuntimeModel
    from segq.deploy.onnx_export import export_onnx

    cfg = demo_cfg()
    # the benchmark's exports: dynamic batch, fixed H and W
    options = ExportOptions(input_shape=[-1, *SHAPE[1:]], without_argmax=True)
    (result,) = ptq(cfg, str(fp32_run), PTQOptions(
        save_dir=str(tmp_path / "ptq"), algo="abs_max", batch_size=4, export=options,
        source=CalibrationSource(calib_num=4)))
    fp32_dir = export_model(cfg, build_model_for(cfg, str(fp32_run)), tmp_path / "fp32",
                            options)
    onnx_file = export_onnx(result.model_dir)
    x = builders.build_dataset(cfg.val_dataset, "val_dataset")[0]["img"][None]
    assert cosine(OnnxRuntimeModel(onnx_file, 2).run(x)[0],
                  logits(result.model_dir, x, int8=True)) >= 0.98
    export_onnx(fp32_dir)
    fp32, int8 = load_exports([fp32_dir], [result.model_dir])
    assert (method_of(fp32), method_of(int8)) == ("FP32", "PTQ abs_max (segq)")


@pytest.mark.parametrize("name", MODELS.names())
def test_ptq_quantizes_every_zoo_model(name, tmp_path):
    model = build_test_model(name, num_classes=4)
    model.train()
    num_outputs = len(model(paddle.randn([2, 3, 64, 64])))
    model.eval()
    fp32 = tmp_path / "fp32.pdparams"
    paddle.save(model.state_dict(), str(fp32))
    cfg = tiny_config(name, num_outputs)
    (result,) = ptq(cfg, str(fp32), PTQOptions(save_dir=str(tmp_path / "int8"), algo="abs_max",
                                               batch_size=2,
                                               export=ExportOptions(input_shape=[-1, 3, 64, 64]),
                                               source=CalibrationSource(calib_num=4)))
    ops = weight_ops(result.model_dir)
    assert ops and all(op.weight_quantized for op in ops)
    deployed = evaluate_inference_model(cfg, str(result.model_dir), int8=True)
    assert deployed.num_images == 2 and 0.0 <= deployed.miou <= 1.0
    # the analysis names every layer of every zoo network, and its fallback variants deploy
    report = quant_report(cfg, str(fp32), str(tmp_path / "report"),
                          model_dir=str(result.model_dir), num_images=1)
    assert len(report.layers) == len(ops) and all(r["quantized"] for r in report.layers)
    assert len({r["layer"] for r in report.layers}) >= len(ops) // 2
    float_dir = export_model(cfg, model, tmp_path / "fp32", ExportOptions(
        input_shape=[-1, 3, 64, 64]))
    int8 = ExportedProgram(result.model_dir, float_source=ExportedProgram(float_dir))
    variant = int8.save(int8.variant(float_layers=[0, len(ops) - 1]), tmp_path / "fallback")
    shutil.copyfile(result.model_dir / "deploy.yaml", variant / "deploy.yaml")
    assert [op.weight_quantized for op in weight_ops(variant)] == (
        [False] + [True] * (len(ops) - 2) + [False])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 64)).astype("float32")
    assert logits(variant, x, int8=True).shape == logits(result.model_dir, x, int8=True).shape


# ---------------------------------------------------------------- bad input
def run_ptq(*args):
    return subprocess.run([sys.executable, "slim/ptq.py", "--config", str(DEMO), *args,
                           "--opts", *SMALL], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def write_images(folder: Path, n: int, size=(48, 64)) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / ("nested" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"im{i}.png"),
                    rng.integers(0, 256, (*size, 3)).astype(np.uint8))


@pytest.mark.fault("a calibration folder with an unreadable image",
                   command="python slim/ptq.py --calib_dir DIR")
def test_a_corrupt_calibration_image_is_named_and_nothing_is_written(fault, fp32_run,
                                                                      tmp_path):
    write_images(tmp_path / "calib", 3)
    (tmp_path / "calib" / "nested" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    r = run_ptq("--model_path", str(fp32_run), "--save_dir", str(tmp_path / "out"),
                "--calib_dir", str(tmp_path / "calib"), "--calib_num", "4")
    assert r.returncode == 2 and "broken.png" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()
    fault.seen(r.stderr, kept="--save_dir not created")


@pytest.mark.fault("fewer calibration images than --calib_num",
                   command="python slim/ptq.py --calib_dir DIR --calib_num 256")
def test_too_few_calibration_images(fault, fp32_run, tmp_path):
    write_images(tmp_path / "calib", 3)
    with pytest.raises(CalibrationError, match="holds 3 file.*fewer than --calib_num 8") as e:
        ptq(demo_cfg(), str(fp32_run), PTQOptions(
            save_dir=str(tmp_path / "out"),
            source=CalibrationSource(calib_dir=str(tmp_path / "calib"), calib_num=8)))
    fault.seen(str(e.value))


@pytest.mark.fault(".npy calibration tensors of the wrong channel count",
                   command="python slim/ptq.py --calib_dir TENSORS")
def test_npy_tensors_of_the_wrong_layout_are_named(fault, fp32_run, tmp_path):
    (tmp_path / "t").mkdir()
    np.save(tmp_path / "t" / "a.npy", np.zeros((3, 48, 64), np.float32))
    np.save(tmp_path / "t" / "b.npy", np.zeros((48, 64, 3), np.float32))  # HWC, not CHW
    with pytest.raises(CalibrationError, match=r"b\.npy has shape \[48, 64, 3\]") as e:
        ptq(demo_cfg(), str(fp32_run), PTQOptions(
            save_dir=str(tmp_path / "out"),
            source=CalibrationSource(calib_dir=str(tmp_path / "t"), calib_num=2)))
    assert not (tmp_path / "out").exists()
    fault.seen(str(e.value))


@pytest.mark.fault("a calibration list that overlaps the val list",
                   command="python slim/ptq.py --calib_list val.txt")
def test_calibrating_on_val_images_is_refused_unless_allowed(fault, tiny_dataset_dir,
                                                             tmp_path):
    data = {"train_dataset": {"type": "Dataset", "dataset_root": str(tiny_dataset_dir),
                              "train_path": "train.txt", "num_classes": 3, "mode": "train",
                              "transforms": [{"type": "Normalize"}]},
            "val_dataset": {"type": "Dataset", "dataset_root": str(tiny_dataset_dir),
                            "val_path": "val.txt", "num_classes": 3, "mode": "val",
                            "transforms": [{"type": "Normalize"}]}}
    cfg = load_config(DEMO, [f"{k}={v}" for k, v in data.items()])
    model = build_test_model("BiSeNetV2", 3)
    paddle.save(model.state_dict(), str(tmp_path / "w.pdparams"))
    source = CalibrationSource(calib_list=str(tiny_dataset_dir / "val.txt"), calib_num=1)
    with pytest.raises(CalibrationError, match="1 calibration image.*also in the val set.*"
                                               "im3.png.*--allow_calib_overlap") as e:
        ptq(cfg, str(tmp_path / "w.pdparams"), PTQOptions(save_dir=str(tmp_path / "o"),
                                                          source=source))
    assert not (tmp_path / "o").exists()
    fault.seen(str(e.value))
    allowed = CalibrationSource(calib_list=source.calib_list, calib_num=1, allow_overlap=True)
    calib = load_calibration_set(cfg, allowed, [{"type": "Normalize"}], progress=False)
    assert len(calib) == 1 and calib.files[0].endswith("im3.png")


def test_calibration_progress_bar_stays_out_of_logs(tiny_dataset_dir, capfd):
    # stderr is a pipe here, as in a log file: the bar's carriage returns would garble it
    cfg = load_config(DEMO)
    source = CalibrationSource(calib_list=str(tiny_dataset_dir / "train.txt"), calib_num=1)
    calib = load_calibration_set(cfg, source, [{"type": "Normalize"}], progress=True)
    assert len(calib) == 1
    assert "reading calibration images" not in capfd.readouterr().err


@pytest.mark.fault("QAT-only quant keys or an unavailable mode given to PTQ",
                   command="python slim/ptq.py --config QAT_CONFIG_WITH_DISTILL")
@pytest.mark.parametrize("extra, opts, message", [
    (["quant={distill: {loss: kl}}"], {}, "quant.distill is .*only applies to quantization-"
                                          "aware training"),
    (["quant={activation_preprocess: PACT}"], {}, "quant.activation_preprocess"),
    ([], {"recon": "layer"}, "reconstruction PTQ .*does not run on the pinned"),
    ([], {"algo": "kl"}, "--algo must be one of abs_max, avg, hist, mse, KL or all"),
    (["quant={activation_bits: 6}"], {}, r"quant.activation_bits \(6\) and quant.weight_bits "
                                         r"\(8\) differ"),
], ids=["distill", "pact", "recon", "algo", "unequal_bits"])
def test_settings_ptq_cannot_honour_are_refused(fault, tmp_path, extra, opts, message):
    with pytest.raises(ValueError, match=message) as e:
        ptq(demo_cfg(extra), "unused.pdparams", PTQOptions(save_dir=str(tmp_path / "o"),
                                                             **opts))
    assert not (tmp_path / "o").exists()
    fault.seen(str(e.value), what=f"PTQ with {extra or opts}")


@pytest.mark.parametrize("name, error", [
    # a program with dropout: PaddleSlim's program merge drops the op's Mask output
    ("BiSeNetV2", "dropout"),
    # without dropout: the rounding variables are built with F.sigmoid, which the legacy
    # static graph of Paddle 3.3.1 rejects
    ("UNet", "sigmoid"),
])
def test_reconstruction_ptq_still_fails_on_the_pinned_versions(name, error, tmp_path):
    """quant_recon_static is refused by slim/ptq.py because of these failures; when this test
    fails, the pinned versions run it and --recon can be offered."""
    from segq.config import QuantConfig
    from segq.quant.paddleslim_adapter import quantize_post_training
    model = build_test_model(name, 4)
    model.eval()
    cfg = tiny_config(name, 1)
    fp32_dir = export_model(cfg, model, str(tmp_path / "fp32"),
                            ExportOptions(input_shape=[1, 3, 64, 64]))
    batches = [np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype("float32")]
    with pytest.raises((ValueError, TypeError), match=error):
        quantize_post_training(fp32_dir, tmp_path / "recon", lambda: iter(batches), 1,
                               QuantConfig(), "abs_max", recon="layer")
    assert paddle.in_dynamic_mode()  # dygraph restored after the failure
