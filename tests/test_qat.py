"""QAT fine-tuning and evaluation through the slim/ scripts, on the synthetic dataset."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs/demo/bisenetv2_synthetic_96x128_300.yml"
SMALL = ["--opts", "train_dataset.num_samples=16", "val_dataset.num_samples=4",
         "train_dataset.image_size=[48, 64]", "val_dataset.image_size=[48, 64]",
         "batch_size=4"]


def run(*args):
    r = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    return r


@pytest.fixture(scope="module")
def fp32_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32")
    r = run("train.py", "--config", str(DEMO), "--iters", "20", "--save_interval", "20",
            "--save_dir", str(out), *SMALL)
    assert r.returncode == 0, r.stderr
    return out / "iter_20/model.pdparams"


QAT_COMMON = ["--config", str(DEMO), "--iters", "4", "--save_interval", "2",
              "--learning_rate", "0.001", "--seed", "3", "--do_eval"]
SKIP = "quant.skip_layers=[head.conv_1x1]"


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory, fp32_checkpoint):
    out = tmp_path_factory.mktemp("qat")
    r = run("slim/qat_train.py", *QAT_COMMON, "--model_path", str(fp32_checkpoint),
            "--save_dir", str(out), *SMALL, SKIP)
    assert r.returncode == 0, r.stderr
    assert "fake quant inserted; 1 sublayers kept in float: head.conv_1x1" in r.stdout
    return out


def test_qat_train_val_and_exact_resume(tmp_path, qat_run):
    state = paddle.load(str(qat_run / "iter_4/model.pdparams"))
    scales = [k for k in state if "scale" in k]
    assert scales, "a QAT checkpoint holds the fake-quant scales"

    r = run("slim/qat_train.py", *QAT_COMMON, "--resume_model", str(qat_run / "iter_2"),
            "--save_dir", str(tmp_path / "r"), *SMALL, SKIP)
    assert r.returncode == 0, r.stderr
    resumed = paddle.load(str(tmp_path / "r/iter_4/model.pdparams"))
    for k in state:
        np.testing.assert_array_equal(state[k].numpy(), resumed[k].numpy(), err_msg=k)

    r = run("slim/qat_val.py", "--config", str(DEMO), "--model_path",
            str(qat_run / "iter_4/model.pdparams"), "--result_json",
            str(tmp_path / "qv.json"), *SMALL, SKIP)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "qv.json").read_text())
    assert set(result) >= {"miou", "class_iou", "acc", "kappa", "num_images"}
    assert result["num_images"] == 4 and 0.0 < result["miou"] <= 1.0


def test_qat_with_distillation_and_folded_batchnorm_trains_and_exports(tmp_path,
                                                                        fp32_checkpoint):
    opts = ["quant.distill.loss=kl", "quant.distill.weight=2.0", "quant.fuse_conv_bn=true"]
    r = run("slim/qat_train.py", "--config", str(DEMO), "--iters", "2", "--save_interval", "2",
            "--model_path", str(fp32_checkpoint), "--save_dir", str(tmp_path / "q"),
            "--use_vdl", "--log_iters", "1", *SMALL, *opts)
    assert r.returncode == 0, r.stderr
    state = paddle.load(str(tmp_path / "q/iter_2/model.pdparams"))
    assert not any("_batch_norm" in k for k in state if k.startswith("head."))
    r = run("slim/qat_export.py", "--config", str(DEMO), "--model_path",
            str(tmp_path / "q/iter_2/model.pdparams"), "--save_dir", str(tmp_path / "e"),
            *SMALL, *opts)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load((tmp_path / "e/deploy.yaml").read_text())["Quant"]["fuse_conv_bn"]
    # resuming a distilled run needs the teacher's weights
    r = run("slim/qat_train.py", "--config", str(DEMO), "--iters", "2", "--resume_model",
            str(tmp_path / "q/iter_2"), "--save_dir", str(tmp_path / "r"), *SMALL, *opts)
    assert r.returncode == 2 and "FP32 teacher" in r.stderr


def test_qat_with_frozen_bn_statistics_keeps_the_fp32_ones(tmp_path, fp32_checkpoint):
    r = run("slim/qat_train.py", "--config", str(DEMO), "--iters", "2", "--save_interval", "2",
            "--model_path", str(fp32_checkpoint), "--save_dir", str(tmp_path / "q"), *SMALL,
            "freeze_bn_stats=true")
    assert r.returncode == 0, r.stderr
    assert "BatchNorm statistics frozen in" in r.stdout
    fp32 = paddle.load(str(fp32_checkpoint))
    qat = paddle.load(str(tmp_path / "q/iter_2/model.pdparams"))
    stats = [k for k in fp32 if k.endswith(("._mean", "._variance"))]
    assert stats and all(k in qat for k in stats)
    for k in stats:
        np.testing.assert_array_equal(fp32[k].numpy(), qat[k].numpy(), err_msg=k)


def test_qat_needs_fp32_weights_and_matching_skip_layers(tmp_path, fp32_checkpoint):
    r = run("slim/qat_train.py", "--config", str(DEMO), "--save_dir", str(tmp_path), *SMALL)
    assert r.returncode == 2 and "give --model_path" in r.stderr
    r = run("slim/qat_train.py", "--config", str(DEMO), "--model_path", str(fp32_checkpoint),
            "--save_dir", str(tmp_path), *SMALL, "quant.skip_layers=[haed]")
    assert r.returncode == 2 and "'haed' matches no sublayer" in r.stderr
    # FP32 weights are not a QAT checkpoint: qat_val.py says so instead of listing keys
    r = run("val.py", "--config", str(DEMO), "--model_path", str(fp32_checkpoint), *SMALL)
    assert r.returncode == 0
    r = run("slim/qat_val.py", "--config", str(DEMO), "--model_path", str(fp32_checkpoint),
            *SMALL)
    assert r.returncode == 2 and "is an FP32 checkpoint" in r.stderr


def test_qat_export_cli_writes_a_small_int8_model_that_keeps_the_qat_miou(tmp_path, qat_run,
                                                                           fp32_checkpoint):
    r = run("slim/qat_export.py", "--config", str(DEMO), "--model_path",
            str(qat_run / "iter_4/model.pdparams"), "--save_dir", str(tmp_path / "int8"),
            *SMALL, SKIP)
    assert r.returncode == 0, r.stderr
    info = yaml.safe_load((tmp_path / "int8/deploy.yaml").read_text())
    assert info["Deploy"]["output_op"] == "argmax"
    assert info["Quant"]["skipped_layers"] == ["head.conv_1x1"]
    assert info["Quant"]["weights_stored_as"] == "int8"
    assert yaml.safe_load((tmp_path / "int8/config.yml").read_text())["quant"]["skip_layers"] \
        == ["head.conv_1x1"]

    r = run("export.py", "--config", str(DEMO), "--model_path", str(fp32_checkpoint),
            "--save_dir", str(tmp_path / "fp32"), *SMALL)
    assert r.returncode == 0, r.stderr
    size = {d: (tmp_path / d / "model.pdiparams").stat().st_size for d in ("int8", "fp32")}
    assert size["int8"] <= 0.3 * size["fp32"], size

    r = run("slim/qat_val.py", "--config", str(DEMO), "--model_path",
            str(qat_run / "iter_4/model.pdparams"), "--result_json",
            str(tmp_path / "dygraph.json"), *SMALL, SKIP)
    assert r.returncode == 0, r.stderr
    r = run("deploy/python/eval_deployed.py", "--config", str(DEMO), "--model_dir",
            str(tmp_path / "int8"), "--precision", "int8", "--result_json",
            str(tmp_path / "deployed.json"), *SMALL)
    assert r.returncode == 0, r.stderr
    dygraph, deployed = (json.loads((tmp_path / f).read_text())["miou"]
                         for f in ("dygraph.json", "deployed.json"))
    assert abs(deployed - dygraph) <= 0.005, (dygraph, deployed)


def test_qat_export_without_a_checkpoint_is_an_input_error(tmp_path):
    r = run("slim/qat_export.py", "--config", str(DEMO), "--save_dir", str(tmp_path), *SMALL)
    assert r.returncode == 2 and "give the QAT checkpoint" in r.stderr


def test_compare_int8_reports_both_precisions_side_by_side(tmp_path, qat_run, fp32_checkpoint):
    r = run("tools/compare_int8.py", "--config", str(DEMO), "--fp32_model",
            str(fp32_checkpoint), "--model_path", str(qat_run / "iter_4/model.pdparams"),
            "--save_dir", str(tmp_path), "--input_shape", "1", "3", "48", "64",
            "--latency_runs", "5", "--result_json", str(tmp_path / "rows.json"),
            "--out", str(tmp_path / "results.md"), *SMALL, SKIP)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rows.json").read_text())
    assert report["model_config"]["type"] == "BiSeNetV2"
    assert report["quant_config"]["skip_layers"] == ["head.conv_1x1"]
    assert report["command"].startswith("python tools/compare_int8.py --config")
    rows = report["rows"]
    assert [(row["stage"], row["precision"]) for row in rows] == [
        ("dygraph", "fp32"), ("dygraph", "int8 (fake quant)"),
        ("Paddle Inference oneDNN", "fp32"), ("Paddle Inference oneDNN", "int8")]
    fp32_dy, qat_dy, fp32_pi, int8_pi = rows
    assert fp32_pi["miou"] == pytest.approx(fp32_dy["miou"], abs=1e-4)
    assert abs(int8_pi["miou"] - qat_dy["miou"]) <= 0.005
    assert fp32_pi["speedup"] == pytest.approx(1.0)
    assert int8_pi["speedup"] == pytest.approx(fp32_pi["latency_ms"] / int8_pi["latency_ms"])
    assert int8_pi["size_mb"] < 0.35 * fp32_pi["size_mb"]
    assert "| BiSeNetV2 | Paddle Inference oneDNN | int8 |" in r.stdout
    section = (tmp_path / "results.md").read_text()
    assert "QAT: 4 iterations (checkpoint at iter 4), wall time" in section
    assert "table written by: `python tools/compare_int8.py --config" in section
