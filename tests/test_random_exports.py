"""Random-weight exports for speed measurements (tools/random_exports.py, the zoo table):
an FP32, an INT8 and an INT8 argmax-before-resize export of the same network that run."""
import numpy as np
import yaml

from segq.bench.random_exports import random_weight_exports
from segq.config import load_config
from segq.deploy import load_deploy_info
from segq.deploy.paddle_inference import PaddleInferenceModel
from tests.helpers import DEMO
from tools.random_exports import main

SHAPE = [1, 3, 64, 96]


def test_three_exports_of_one_network_run(tmp_path):
    dirs = random_weight_exports(load_config(DEMO), tmp_path, SHAPE)
    assert sorted(dirs) == ["fp32", "int8", "int8_fast"]
    infos = {name: load_deploy_info(path) for name, path in dirs.items()}
    assert not infos["fp32"].is_quantized
    assert infos["int8"].is_quantized and infos["int8_fast"].is_quantized
    assert infos["int8_fast"].argmax_before_resize and not infos["int8"].argmax_before_resize
    x = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    labels = {name: PaddleInferenceModel(path, int8=name != "fp32").run(x)
              for name, path in dirs.items()}
    assert all(out.shape == (1, 64, 96) for out in labels.values())
    # the INT8 model is the FP32 one with observed scales: mostly the same classes
    assert (labels["int8"] == labels["fp32"]).mean() > 0.8


def test_cli_writes_under_save_dir_and_the_openvino_models_profile(tmp_path, capsys):
    """--onnx adds the FP32 / INT8 ONNX files and the NNCF peer; the profiler takes the
    peer's .xml file directly."""
    from tools.profile_inference import main as profile_main

    # a dynamic batch, as the deployment benchmark wants it (calibration takes batches of 1)
    main(["--config", DEMO, "--save_dir", str(tmp_path), "--input_shape", "-1",
          *map(str, SHAPE[1:]), "--onnx", "--fast_argmax", "0.5"])
    printed = capsys.readouterr().out
    for name in ("fp32", "int8", "int8_fast"):
        assert (tmp_path / name / "deploy.yaml").is_file() and f"{name}: " in printed
    peer = tmp_path / "nncf" / "model.xml"
    assert peer.is_file() and (tmp_path / "int8" / "model.onnx").is_file()
    assert (tmp_path / "ort_ptq" / "model.onnx").is_file()
    assert load_deploy_info(tmp_path / "int8_fast").argmax_before_resize == 0.5
    assert load_deploy_info(tmp_path / "int8").onnx_file == tmp_path / "int8" / "model.onnx"
    layout = yaml.safe_load((tmp_path / "int8" / "deploy.yaml").read_text())["Deploy"]
    assert layout["onnx_int8_layout"]["layout"] == "onnxruntime"
    profile_main(["--model_dir", str(peer), str(tmp_path / "int8"), "--backend", "openvino",
                  "--input_shape", *map(str, SHAPE), "--cpu_threads", "1", "--runs", "2"])
    tables = capsys.readouterr().out
    assert f"### {peer}: openvino" in tables and f"### {tmp_path / 'int8'}: openvino INT8" in tables
