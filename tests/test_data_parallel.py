"""Data parallelism on 2 CPU ranks (paddle.distributed.launch, gloo): N ranks learn what one
rank learns at the same global batch, resume across rank counts, and evaluate their shares
of the val set into exactly the single-process result."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from segq import builders
from segq.config.schema import Component
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


def test_qat_on_two_ranks_learns_and_observes_what_one_rank_does(equal_pixels_config,
                                                                  tmp_path):
    """QAT, 2 ranks x 1 against 1 rank x 2: the same weights and the same activation scales
    (the moving-average observers see the global batch's max|x| on every rank)."""
    paddle.seed(1)
    model = builders.build_model(Component(**model_spec("PPLiteSeg")), 3)
    paddle.save(model.state_dict(), str(tmp_path / "fp32.pdparams"))
    common = ["slim/qat_train.py", "--config", str(equal_pixels_config), "--model_path",
              str(tmp_path / "fp32.pdparams"), "--save_interval", "4"]
    run(*common, "--batch_size", "1", "--save_dir", str(tmp_path / "dp"), launch=True,
        log_dir=tmp_path / "log")
    run(*common, "--batch_size", "2", "--save_dir", str(tmp_path / "one"))
    assert_same_weights(tmp_path / "dp/iter_4", tmp_path / "one/iter_4")
    observers = [k for k in weights(tmp_path / "one/iter_4")
                 if k.endswith(("_fake_quant_input._scale", "_ma_output_scale._scale"))]
    assert len(observers) > 50  # the scales are among the weights compared
    # (with the sync left out, this comparison fails at 3.45: docs/experiments, 2026-12-03)


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
        assert f"error (rank {rank} of 2): sync_bn: true needs GPUs" in log
        assert "Traceback" not in log
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("world", ["1", "2"])
def test_a_failed_rank_killed_by_the_launcher_adds_no_cpp_traceback(world):
    """The launcher SIGTERMs the ranks still exiting once the first failed rank is gone (the
    race that made the test above flaky); the kill must not append Paddle's C++ stack to
    the one-line error. Single process (negative control): Paddle's handler is left alone."""
    code = ("import os, signal, paddle\n"
            "from segq.cli import run_cli\n"
            "def main(argv): raise ValueError('bad value')\n"
            "run_cli(main, [])\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n")
    env = {**os.environ, "PADDLE_TRAINERS_NUM": world, "PADDLE_TRAINER_ID": "1"}
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "bad value" in r.stderr
    assert ("Traceback" in r.stdout + r.stderr) == (world == "1"), r.stderr[-2000:]


def test_ptq_under_launch_calibrates_once_on_rank_0(fp32_run, tmp_path):
    run("slim/ptq.py", "--config", DEMO, "--model_path", str(fp32_run), "--save_dir",
        str(tmp_path / "ptq"), "--algo", "abs_max", "--calib_num", "4", "--batch_size", "2",
        "--opts", *SMALL, launch=True, log_dir=tmp_path / "log")
    quant = yaml.safe_load((tmp_path / "ptq/deploy.yaml").read_text())["Quant"]
    assert quant["method"] == "ptq" and quant["calibration"]["num_images"] == 4
    assert "post-training quantization runs on rank 0" in (tmp_path / "log/workerlog.1"
                                                            ).read_text()


def test_the_throughput_table_reads_rank_0s_step_times():
    from segq.bench.data_parallel import Throughput, markdown, step_times

    log = "".join(f"2026 INFO [TRAIN] iter: {i}/9, loss: 1.0, lr: 0.01, batch_cost: "
                  f"{0.5 if i < 3 else 0.25}s, reader_cost: 0.01s, ips: 4 samples/s\n"
                  for i in range(1, 10))
    assert step_times(log, warmup=2) == [0.25] * 7
    table = markdown([Throughput(1, 2, 4, 0.5, 1.0), Throughput(2, 1, 4, 0.8, 1.1)])
    assert "| 2 | 1 | 4 | 0.800 | 1.10 | 10.00 | 5.00 | 1.25x |" in table


def rank_pid(rank: int, marker: str) -> int | None:
    """The pid of the launched process of ``rank`` whose command line contains ``marker``."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in cmdline and f"PADDLE_TRAINER_ID={rank}".encode() in environ:
            return int(proc.name)
    return None


@pytest.mark.fault("a rank killed (SIGKILL) during data-parallel training",
                   command="python -m paddle.distributed.launch --nproc_per_node 2 train.py")
def test_a_killed_rank_stops_the_job_and_the_last_checkpoint_resumes(
        fault, equal_pixels_config, tmp_path):
    save = tmp_path / "dp"
    proc = subprocess.Popen(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
         "--log_dir", str(tmp_path / "log"), "train.py", "--config", str(equal_pixels_config),
         "--iters", "10000", "--save_interval", "2", "--save_dir", str(save)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (save / "iter_2" / "model.pdparams").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.2)
        os.kill(rank_pid(1, str(save)), signal.SIGKILL)
        killed = time.monotonic()
        proc.communicate(timeout=60)  # a hang fails here
    finally:
        proc.kill()
    assert proc.returncode != 0 and time.monotonic() - killed < 30
    survivor = (tmp_path / "log/workerlog.0").read_text()
    # gloo aborts rank 0 on the closed socket (IoException) or on its timeout
    # (TimeoutException, which names "pair_rank = 1"), whichever it meets first
    assert re.search(r"terminate called after throwing an instance of "
                     r"'gloo::(IoException|TimeoutException)'", survivor)
    last = max(save.glob("iter_*"), key=lambda p: int(p.name.split("_")[1]))
    run("train.py", "--config", str(equal_pixels_config), "--batch_size", "2", "--iters",
        str(int(last.name.split("_")[1]) + 1), "--save_dir", str(save),
        "--resume_model", str(last))
    fault.seen(f"rank 0 aborts on gloo's IoException or TimeoutException; launcher exit "
               f"{proc.returncode}", kept=f"{last.name} resumed in one process")
