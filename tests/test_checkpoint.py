import json

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
    with pytest.raises(CheckpointError, match=r"missing \(1\): conv.bias[\s\S]*unexpected \(1\): extra.weight"):
        load_weights(Tiny(), tmp_path / "odd.pdparams")
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
