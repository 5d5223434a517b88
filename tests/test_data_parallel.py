"""Data parallelism on 2 CPU ranks (paddle.distributed.launch, gloo): N ranks learn what one
rank learns at the same global batch, resume across rank counts, and evaluate their shares
of the val set into exactly the single-process result."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from tests.helpers import DEMO, REPO, SMALL
from tests.zoo import model_spec


def run(*args, launch: bool = False, log_dir: Path | None = None):
    prefix = (["-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
               str(log_dir)] if launch else [])
    r = subprocess.run([sys.executable, *prefix, *args], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    logs = "".join(p.read_text() for p in sorted(log_dir.glob("workerlog.*"))) if launch else ""
    assert r.returncode == 0, (r.stdout + r.stderr + logs)[-3000:]
    return r


@pytest.fixture
def equal_pixels_config(tiny_dataset_dir, tmp_path) -> Path:
    """PP-LiteSeg (no dropout) on 24x32 images that each ignore the same 4 pixels, without
    augmentation, BatchNorm statistics frozen: per-rank losses are means over equally many
    pixels and nothing depends on how a batch is split, so 2 x B and 1 x 2B must agree."""
    data = {"type": "Dataset", "dataset_root": str(tiny_dataset_dir), "num_classes": 3,
            "train_path": "train.txt", "val_path": "val.txt",
            "transforms": [{"type": "Normalize"}]}
    cfg = {"batch_size": 1, "iters": 4, "freeze_bn_stats": True,
           "train_dataset": {**data, "mode": "train"}, "val_dataset": {**data, "mode": "val"},
           "model": model_spec("PPLiteSeg"),
           "optimizer": {"type": "SGD", "momentum": 0.9, "weight_decay": 0.0005},
           "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.01, "end_lr": 0.0,
                            "power": 0.9},
           "loss": {"types": [{"type": "CrossEntropyLoss"}], "coef": [1.0, 1.0, 1.0]}}
    path = tmp_path / "dp.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def weights(checkpoint: Path) -> dict:
    return {k: v.numpy() for k, v in paddle.load(str(checkpoint / "model.pdparams")).items()}


def assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
    assert worst <= atol, f"largest weight difference {worst:.3g} > {atol}"


def test_two_ranks_learn_what_one_rank_learns_at_the_same_global_batch(
        equal_pixels_config, tmp_path):
    common = ["train.py", "--config", str(equal_pixels_config), "--save_interval", "4"]
    run(*common, "--batch_size", "1", "--save_dir", str(tmp_path / "dp"), launch=True,
        log_dir=tmp_path / "log")
    run(*common, "--batch_size", "2", "--save_dir", str(tmp_path / "one"))
    assert_same_weights(tmp_path / "dp/iter_4", tmp_path / "one/iter_4")
    # and the weights did move: the comparison is not between two untouched inits
    run(*common, "--batch_size", "2", "--iters", "1", "--save_interval", "1",
        "--save_dir", str(tmp_path / "short"))
    moved = weights(tmp_path / "short/iter_1")
    final = weights(tmp_path / "one/iter_4")
    assert max(float(np.abs(moved[k] - final[k]).max()) for k in final) > 1e-4


def test_resume_on_another_rank_count_continues_the_same_run(equal_pixels_config, tmp_path):
    """2 ranks x 1 to iteration 2, then 1 rank x 2 to 4 = 1 rank x 2 throughout."""
    common = ["train.py", "--config", str(equal_pixels_config), "--save_interval", "2"]
    run(*common, "--batch_size", "1", "--iters", "4", "--save_dir", str(tmp_path / "dp"),
        launch=True, log_dir=tmp_path / "log")
    r = run(*common, "--batch_size", "2", "--iters", "4", "--save_dir", str(tmp_path / "mix"),
            "--resume_model", str(tmp_path / "dp/iter_2"))
    assert "data order differs" not in r.stdout + r.stderr  # same global batch: no warning
    run(*common, "--batch_size", "2", "--iters", "4", "--save_dir", str(tmp_path / "one"))
    assert_same_weights(tmp_path / "mix/iter_4", tmp_path / "one/iter_4")


def test_a_changed_global_batch_is_still_warned_about(equal_pixels_config, tmp_path):
    common = ["train.py", "--config", str(equal_pixels_config), "--save_interval", "2"]
    run(*common, "--batch_size", "1", "--iters", "2", "--save_dir", str(tmp_path / "a"))
    r = run(*common, "--batch_size", "2", "--iters", "4", "--save_dir", str(tmp_path / "b"),
            "--resume_model", str(tmp_path / "a/iter_2"))
    assert "global batch 1" in r.stdout + r.stderr and "data order differs" in r.stdout + r.stderr


def test_two_ranks_evaluate_exactly_what_one_process_does(fp32_run, tmp_path):
    common = ["val.py", "--config", DEMO, "--model_path", str(fp32_run), "--opts", *SMALL,
              "val_dataset.num_samples=5"]
    run(*common, "--result_json", str(tmp_path / "dp.json"), launch=True,
        log_dir=tmp_path / "log")
    run(*common, "--result_json", str(tmp_path / "one.json"))
    dp, one = (json.loads((tmp_path / f).read_text()) for f in ("dp.json", "one.json"))
    assert dp["num_images"] == one["num_images"] == 5
    assert dp["confusion"] == one["confusion"] and dp["miou"] == one["miou"]


def test_sync_bn_on_cpu_ranks_fails_in_one_line_before_any_file(equal_pixels_config, tmp_path):
    config = tmp_path / "sync.yml"
    config.write_text(f"_base_: {equal_pixels_config}\nsync_bn: true\n")
    r = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
                        "2", "--log_dir", str(tmp_path / "log"), "train.py", "--config",
                        str(config), "--save_dir", str(tmp_path / "run")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    for rank in (0, 1):
        log = (tmp_path / f"log/workerlog.{rank}").read_text()
        assert "error: sync_bn: true needs GPUs" in log and "Traceback" not in log
    assert not (tmp_path / "run").exists()
