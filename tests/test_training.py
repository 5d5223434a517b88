"""End-to-end FP32 training on the built-in synthetic dataset: loss drops, resume is exact,
the CLI scripts work and bad inputs fail with clear messages."""
import json
import subprocess
import sys
import warnings

import numpy as np
import paddle
import pytest

from segq.engine.workflows import TrainOptions, evaluate_checkpoint, train
from tests.helpers import DEMO, REPO, SMALL, small_cfg


def test_short_training_lowers_loss_and_writes_best(tmp_path):
    losses = []

    from segq.engine.trainer import Hook

    class Record(Hook):
        def after_iter(self, trainer, out):
            losses.append(out.loss)

    state = train(small_cfg(40, ["lr_scheduler.warmup_iters=5"]),
                  TrainOptions(save_dir=str(tmp_path), save_interval=20, do_eval=True,
                               log_iters=10), extra_hooks=[Record()])
    assert state.iteration == 40 and len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert (tmp_path / "best_model/model.pdparams").is_file()
    assert (tmp_path / "config.yml").is_file()
    best = json.loads((tmp_path / "best_model/eval.json").read_text())
    assert best["miou"] == pytest.approx(state.best_miou)
    assert sorted(p.name for p in tmp_path.glob("iter_*")) == ["iter_20", "iter_40"]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_gives_the_same_state_as_an_uninterrupted_run(tmp_path, num_workers):
    cfg = small_cfg(6, ["lr_scheduler.warmup_iters=4"])  # resumed inside the warm-up
    opts = dict(save_interval=3, log_iters=3, num_workers=num_workers, seed=7)
    train(cfg, TrainOptions(save_dir=str(tmp_path / "full"), **opts))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, TrainOptions(save_dir=str(tmp_path / "resumed"),
                                resume_model=str(tmp_path / "full/iter_3"), **opts))
    # Paddle's false "unused values in state_dict" about the warm-up's nested state
    assert not [w for w in caught if "state_dict" in str(w.message)]
    a = paddle.load(str(tmp_path / "full/iter_6/model.pdparams"))
    b = paddle.load(str(tmp_path / "resumed/iter_6/model.pdparams"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    opt_a = paddle.load(str(tmp_path / "full/iter_6/model.pdopt"))
    opt_b = paddle.load(str(tmp_path / "resumed/iter_6/model.pdopt"))
    assert opt_a["LR_Scheduler"] == opt_b["LR_Scheduler"]


@pytest.mark.parametrize("freeze", [False, True])
def test_freeze_bn_stats_keeps_the_loaded_statistics_and_still_trains(tmp_path, freeze):
    train(small_cfg(2), TrainOptions(save_dir=str(tmp_path / "fp32"), save_interval=2))
    start = paddle.load(str(tmp_path / "fp32/iter_2/model.pdparams"))
    train(small_cfg(2, [f"freeze_bn_stats={str(freeze).lower()}"]),
          TrainOptions(save_dir=str(tmp_path / "ft"), save_interval=2,
                       model_path=str(tmp_path / "fp32/iter_2/model.pdparams")))
    end = paddle.load(str(tmp_path / "ft/iter_2/model.pdparams"))
    stats = [k for k in start if k.endswith(("._mean", "._variance"))]
    affine = [k.replace("._mean", ".weight") for k in stats if k.endswith("._mean")]
    assert len(stats) > 20 and all(k in end for k in affine)
    stats_moved = [k for k in stats if not np.array_equal(start[k].numpy(), end[k].numpy())]
    assert (stats_moved == []) == freeze, stats_moved[:3]
    # scale and shift learn either way
    assert any(not np.array_equal(start[k].numpy(), end[k].numpy()) for k in affine)


def test_evaluate_checkpoint_writes_result_json(tmp_path):
    cfg = small_cfg(2)
    train(cfg, TrainOptions(save_dir=str(tmp_path), save_interval=2))
    out = tmp_path / "val.json"
    result = evaluate_checkpoint(cfg, str(tmp_path / "iter_2"), result_json=str(out))
    data = json.loads(out.read_text())
    assert data["miou"] == pytest.approx(result.miou)
    assert data["num_images"] == 4 and len(data["class_iou"]) == 4


def run_script(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_cli_train_val_export_predict(tmp_path):
    opts = ["--opts", *SMALL]
    r = run_script("train.py", "--config", str(DEMO), "--iters", "4", "--save_interval", "4",
                   "--do_eval", "--save_dir", str(tmp_path / "run"), "--use_vdl", *opts)
    assert r.returncode == 0, r.stderr
    assert "[TRAIN] iter: 4/4" in r.stdout and "ETA" in r.stdout
    assert list((tmp_path / "run/vdl").iterdir())
    ckpt = tmp_path / "run/best_model/model.pdparams"
    r = run_script("val.py", "--config", str(DEMO), "--model_path", str(ckpt),
                   "--result_json", str(tmp_path / "v.json"), *opts)
    assert r.returncode == 0, r.stderr
    assert "mIoU" in r.stdout and json.loads((tmp_path / "v.json").read_text())["num_images"] == 4
    r = run_script("export.py", "--config", str(DEMO), "--model_path", str(ckpt),
                   "--save_dir", str(tmp_path / "infer"), *opts)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "infer/model.pdmodel").is_file()
    assert (tmp_path / "infer/deploy.yaml").is_file()
    r = run_script("deploy/python/eval_deployed.py", "--config", str(DEMO), "--model_dir",
                   str(tmp_path / "infer"), "--result_json", str(tmp_path / "d.json"), *opts)
    assert r.returncode == 0, r.stderr
    deployed = json.loads((tmp_path / "d.json").read_text())
    dygraph = json.loads((tmp_path / "v.json").read_text())
    assert deployed["miou"] == pytest.approx(dygraph["miou"], abs=1e-3)
    import cv2
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    cv2.imwrite(str(img_dir / "a.png"), np.full((40, 56, 3), 120, np.uint8))
    r = run_script("predict.py", "--config", str(DEMO), "--model_path", str(ckpt),
                   "--image_path", str(img_dir), "--save_dir", str(tmp_path / "pred"), *opts)
    assert r.returncode == 0, r.stderr
    mask = cv2.imread(str(tmp_path / "pred/a_mask.png"))
    assert mask.shape == (40, 56, 3)


@pytest.mark.parametrize("args, message", [
    (["--opts", "itres=3"], "itres: unknown key"),
    (["--model_path", "missing/model.pdparams"], "checkpoint not found: missing/model.pdparams"),
    (["--resume_model", "missing_dir"], "cannot resume from missing_dir"),
])
def test_cli_bad_input_fails_with_clear_message(tmp_path, args, message):
    r = run_script("train.py", "--config", str(DEMO), "--save_dir", str(tmp_path), *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_mismatched_checkpoint_is_reported(tmp_path):
    paddle.save({"foo.weight": paddle.zeros([1])}, str(tmp_path / "bad.pdparams"))
    r = run_script("val.py", "--config", str(DEMO), "--model_path",
                   str(tmp_path / "bad.pdparams"), "--opts", *SMALL)
    assert r.returncode == 2
    assert "do not match BiSeNetV2" in r.stderr and "unexpected (1): foo.weight" in r.stderr


def test_data_parallel_run_on_two_cpu_ranks_resumes_in_one_process(tmp_path):
    """Two gloo ranks: rank 0 alone writes; its checkpoint (optimizer state keyed by
    parameter name, not by the DataParallel wrapper) resumes in a single process."""
    small = ["--opts", "train_dataset.num_samples=32", "val_dataset.num_samples=4",
             "train_dataset.image_size=[48, 64]", "val_dataset.image_size=[48, 64]"]
    r = run_script("-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                   "--log_dir", str(tmp_path / "log"), "train.py", "--config", str(DEMO),
                   "--iters", "4", "--save_interval", "2", "--save_dir", str(tmp_path / "dp"),
                   *small)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "[TRAIN] iter: 4/4" in (tmp_path / "log/workerlog.0").read_text()
    assert "[TRAIN]" not in (tmp_path / "log/workerlog.1").read_text()
    assert sorted(p.name for p in (tmp_path / "dp").iterdir()) == ["config.yml", "iter_2",
                                                                   "iter_4"]
    r = run_script("train.py", "--config", str(DEMO), "--iters", "6", "--save_interval", "2",
                   "--save_dir", str(tmp_path / "single"),
                   "--resume_model", str(tmp_path / "dp/iter_4"), *small)
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout and "[TRAIN] iter: 6/6" in r.stdout
