import json
import subprocess
import sys
from pathlib import Path

import paddle
import pytest

from segq.checkpoint import (CheckpointError, TrainState, copy_checkpoint, load_weights,
                             resume_checkpoint, save_checkpoint)


class Tiny(paddle.nn.Layer):
    def __init__(self, out=3):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, out, 1)
        self.bn = paddle.nn.BatchNorm2D(out)


def test_strict_load_reports_missing_unexpected_and_shape(tmp_path):
    paddle.save(Tiny(4).state_dict(), str(tmp_path / "four.pdparams"))
    with pytest.raises(CheckpointError, match=r"shape_mismatch.*conv.weight: checkpoint \[4, 3, 1, 1\]"
                                              r" vs model \[3, 3, 1, 1\]") as info:
        load_weights(Tiny(3), tmp_path / "four.pdparams")
    assert "four.pdparams" in str(info.value)

    state = Tiny().state_dict()
    state["extra.weight"] = state.pop("conv.bias")
    paddle.save(state, str(tmp_path / "odd.pdparams"))
    with pytest.raises(CheckpointError, match=r"missing \(1\): conv.bias[\s\S]*unexpected \(1\): "
                                              r"extra.weight") as info:
        load_weights(Tiny(), tmp_path / "odd.pdparams")
    assert "\n" not in str(info.value)  # the CLI prints it as one line after "error: "
    report = load_weights(Tiny(), tmp_path / "odd.pdparams", strict=False)
    assert report["missing"] == ["conv.bias"] and report["unexpected"] == ["extra.weight"]


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pdparams"):
        load_weights(Tiny(), tmp_path / "nope.pdparams")


def test_save_and_resume_round_trip(tmp_path):
    model = Tiny()
    opt = paddle.optimizer.Momentum(
        paddle.optimizer.lr.PolynomialDecay(0.1, decay_steps=10), parameters=model.parameters())
    loss = model.bn(model.conv(paddle.rand([2, 3, 4, 4]))).mean()
    loss.backward()
    opt.step()
    opt._learning_rate.step()
    save_checkpoint(tmp_path / "iter_1", model, opt, TrainState(iteration=1, best_miou=0.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_1"]  # no tmp/old left
    assert json.loads((tmp_path / "iter_1/state.json").read_text())["iteration"] == 1

    model2 = Tiny()
    opt2 = paddle.optimizer.Momentum(
        paddle.optimizer.lr.PolynomialDecay(0.1, decay_steps=10), parameters=model2.parameters())
    state = resume_checkpoint(tmp_path / "iter_1", model2, opt2)
    assert state.iteration == 1 and state.best_miou == 0.5
    assert opt2.get_lr() == pytest.approx(opt.get_lr())
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert paddle.equal_all(a, b), k


def test_interrupted_write_keeps_previous_best(tmp_path, monkeypatch):
    model = Tiny()
    src = save_checkpoint(tmp_path / "iter_1", model, None, TrainState(iteration=1))
    copy_checkpoint(src, tmp_path / "best_model")
    before = (tmp_path / "best_model/model.pdparams").read_bytes()

    def crash(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(paddle, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "best_model", Tiny(), None, TrainState(iteration=2))
    assert (tmp_path / "best_model/model.pdparams").read_bytes() == before
    assert json.loads((tmp_path / "best_model/state.json").read_text())["iteration"] == 1


def test_resume_from_incomplete_dir_is_clear(tmp_path):
    (tmp_path / "ck").mkdir()
    with pytest.raises(CheckpointError, match="model.pdparams is missing"):
        resume_checkpoint(tmp_path / "ck", Tiny(), None)


def test_resume_from_a_missing_or_file_path_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="the directory does not exist"):
        resume_checkpoint(tmp_path / "nope", Tiny(), None)
    (tmp_path / "model.pdparams").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a directory"):
        resume_checkpoint(tmp_path / "model.pdparams", Tiny(), None)


def test_a_checkpoint_file_that_holds_no_weights_is_named(tmp_path):
    model = Tiny()
    opt = paddle.optimizer.Momentum(
        paddle.optimizer.lr.PolynomialDecay(0.1, decay_steps=10), parameters=model.parameters())
    ck = save_checkpoint(tmp_path / "iter_1", model, opt, TrainState(iteration=1))
    with pytest.raises(CheckpointError, match=r"model.pdopt is not a weights file: its entry "
                                              r"'LR_Scheduler' is a dict, not a tensor"):
        load_weights(Tiny(), ck / "model.pdopt")
    with pytest.raises(CheckpointError, match="rng.pdstate is not a weights file"):
        load_weights(Tiny(), ck / "rng.pdstate")


def test_resume_with_a_broken_state_json_is_one_line(tmp_path):
    save_checkpoint(tmp_path / "iter_1", Tiny(), None, TrainState(iteration=1))
    (tmp_path / "iter_1/state.json").write_text('{"iteration": 1, "epoch": 3}')
    with pytest.raises(CheckpointError, match="state.json is unreadable") as info:
        resume_checkpoint(tmp_path / "iter_1", Tiny(), None)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- through the CLI
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs/demo/bisenetv2_synthetic_96x128_300.yml"
SMALL = ["train_dataset.num_samples=16", "val_dataset.num_samples=4",
         "train_dataset.image_size=[48, 64]", "val_dataset.image_size=[48, 64]",
         "batch_size=4"]


def run_script(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def demo_weights(tmp_path_factory):
    """The demo model's FP32 state dict and its QAT (fake-quant) state dict, untrained."""
    from segq.builders import build_model_for, build_qat_model
    from segq.config import load_config

    out = tmp_path_factory.mktemp("weights")
    cfg = load_config(DEMO, SMALL)
    paddle.save(build_model_for(cfg).state_dict(), str(out / "fp32.pdparams"))
    paddle.save(build_qat_model(cfg).model.state_dict(), str(out / "qat.pdparams"))
    return out


@pytest.mark.parametrize("script", ["slim/qat_val.py", "slim/qat_export.py"])
@pytest.mark.fault("an FP32 checkpoint given to a QAT script",
                   command="python slim/qat_val.py --model_path fp32.pdparams")
def test_qat_scripts_given_an_fp32_checkpoint_say_so(fault, tmp_path, demo_weights, script):
    fp32 = demo_weights / "fp32.pdparams"
    out = ["--save_dir", str(tmp_path / "out")] if script.endswith("export.py") else []
    r = run_script(script, "--config", str(DEMO), "--model_path", str(fp32), *out,
                   "--opts", *SMALL)
    assert r.returncode == 2, r.stderr
    assert last_line(r.stderr) == (
        f"error: {fp32} is an FP32 checkpoint (it has no fake-quant scales): use val.py/"
        f"export.py for it, or run slim/qat_train.py --model_path {fp32} first")
    assert "_fake_quant_" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    fault.seen(r.stderr.replace(f"{demo_weights}/", ""), kept="nothing written",
               command=f"python {script} --model_path fp32.pdparams")


@pytest.mark.fault("a QAT checkpoint given to val.py",
                   command="python val.py --model_path qat.pdparams")
def test_val_given_a_qat_checkpoint_says_so(fault, demo_weights):
    qat = demo_weights / "qat.pdparams"
    r = run_script("val.py", "--config", str(DEMO), "--model_path", str(qat), "--opts", *SMALL)
    assert r.returncode == 2, r.stderr
    assert last_line(r.stderr).startswith(f"error: {qat} is a QAT checkpoint (it has fake-quant "
                                          f"scales): use slim/qat_val.py"), r.stderr
    assert "_fake_quant_" not in r.stderr and "Traceback" not in r.stderr
    fault.seen(r.stderr.replace(f"{demo_weights}/", ""), kept="nothing written")


@pytest.mark.fault("--resume_model names a directory that does not exist",
                   command="python train.py --resume_model output/iter_999")
def test_resume_from_a_missing_directory_says_it_does_not_exist(fault, tmp_path):
    missing = tmp_path / "output/iter_999"
    r = run_script("train.py", "--config", str(DEMO), "--save_dir", str(tmp_path / "run"),
                   "--resume_model", str(missing), "--opts", *SMALL)
    assert r.returncode == 2, r.stderr
    assert last_line(r.stderr) == (f"error: cannot resume from {missing}: "
                                   f"the directory does not exist")
    assert not (tmp_path / "run").exists()
    fault.seen(r.stderr.replace(f"{tmp_path}/", ""), kept="nothing written")
