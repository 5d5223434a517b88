"""Run directories, config consistency and resume: faults a user meets before or during a
long run, each failing fast with one line and losing nothing."""
import hashlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pytest

from segq.config import ConfigError, load_config
from segq.engine.run_dir import RunDirError
from segq.engine.workflows import TrainOptions, train
from tests.helpers import DEMO, REPO, SMALL, small_cfg



def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash: what a failed run must not touch."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_script(*args, **kw):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A 4-iteration run with checkpoints iter_2 and iter_4 (copied by tests that change it)."""
    run = tmp_path_factory.mktemp("run") / "run"
    train(small_cfg(4, ["lr_scheduler.warmup_iters=1"]),
          TrainOptions(save_dir=str(run), save_interval=2, log_iters=2))
    return run


def copy_run(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


@pytest.mark.fault("a fresh run into a --save_dir that holds another run",
                   command="python train.py --config C --save_dir OLD_RUN")
def test_a_fresh_run_refuses_a_used_save_dir_and_touches_nothing(fault, finished_run,
                                                                 tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    before = tree_digest(run)
    with pytest.raises(RunDirError,
                       match="is not empty .*--resume_model .*iter_4.*--overwrite") as e:
        train(small_cfg(2), TrainOptions(save_dir=str(run), save_interval=2))
    assert tree_digest(run) == before
    fault.seen(str(e.value), kept="the old run, unchanged")


@pytest.mark.fault("--overwrite into a --save_dir that holds another run",
                   command="python train.py --config C --save_dir OLD_RUN --overwrite")
def test_overwrite_replaces_the_old_run_only_after_validation(fault, finished_run, tmp_path,
                                                              caplog):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    before = tree_digest(run)
    # a run that fails validation (missing weights) leaves the old run as it was
    with pytest.raises(Exception, match="not found"):
        train(small_cfg(2), TrainOptions(save_dir=str(run), save_interval=2, overwrite=True,
                                         model_path=str(tmp_path / "missing.pdparams")))
    assert tree_digest(run) == before
    train(small_cfg(3), TrainOptions(save_dir=str(run), save_interval=3, overwrite=True))
    assert sorted(p.name for p in run.iterdir()) == ["config.yml", "iter_3", "notes.txt"]
    warning = next(r.message for r in caplog.records if "--overwrite" in r.message)
    fault.seen(warning, kept="files the run did not write (notes.txt)")


@pytest.mark.fault("resuming from a checkpoint older than the newest one in its run",
                   command="python train.py --resume_model RUN/iter_2 --save_dir RUN")
def test_resuming_an_older_checkpoint_in_place_is_refused(fault, finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    before = tree_digest(run)
    with pytest.raises(RunDirError, match="holds iter_4, newer than the checkpoint iter_2") as e:
        train(small_cfg(6), TrainOptions(save_dir=str(run), resume_model=str(run / "iter_2")))
    assert tree_digest(run) == before
    fault.seen(str(e.value), kept="the run, unchanged")


def test_resuming_the_newest_checkpoint_in_place_continues_the_run(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    state = train(small_cfg(6), TrainOptions(save_dir=str(run), save_interval=2,
                                             resume_model=str(run / "iter_4")))
    assert state.iteration == 6 and (run / "iter_6").is_dir()


@pytest.mark.fault("a run that fails at dataset build or at weight loading",
                   command="python train.py --config C --save_dir NEW")
@pytest.mark.parametrize("opts, extra, message", [
    (TrainOptions(model_path="missing.pdparams"), [], "checkpoint not found"),
    (TrainOptions(), ["train_dataset={type: Dataset, dataset_root: /nonexistent, "
                      "train_path: train.txt, num_classes: 4}"], "dataset_root not found"),
])
def test_a_run_that_fails_validation_writes_nothing(fault, tmp_path, opts, extra, message):
    import dataclasses
    cfg = load_config(DEMO, [*SMALL, "iters=2", *extra])
    save = tmp_path / "new"
    with pytest.raises((FileNotFoundError, ValueError, RuntimeError), match=message) as e:
        train(cfg, dataclasses.replace(opts, save_dir=str(save)))
    assert not save.exists()  # not even config.yml
    fault.seen(str(e.value), what=f"a run that fails before training ({message})",
               kept="--save_dir not created")


@pytest.mark.fault("a zero or negative interval flag", command="python train.py --save_interval 0")
@pytest.mark.parametrize("flag", ["--save_interval", "--log_iters", "--keep_checkpoint_max"])
def test_interval_flags_below_one_fail_with_the_flag_named(fault, tmp_path, flag):
    r = run_script("train.py", "--config", str(DEMO), "--save_dir", str(tmp_path / "r"),
                   flag, "0")
    assert r.returncode == 2 and f"{flag} must be an integer >= 1, got 0" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "r").exists()
    fault.seen(r.stderr, what=f"{flag} 0", command=f"python train.py --config C {flag} 0")


@pytest.mark.fault("class counts that disagree between model, datasets and class weights",
                   command="python train.py --config C")
@pytest.mark.parametrize("opts, message", [
    (["model.num_classes=5"],
     "class counts disagree: model.num_classes=5, train_dataset.num_classes=4, "
     "val_dataset.num_classes=4"),
    (["val_dataset.num_classes=3"],
     "class counts disagree: train_dataset.num_classes=4, val_dataset.num_classes=3"),
    (["loss.types.0.weight=[1.0, 2.0, 0.5]"],
     "loss.types.0.weight: 3 class weights for 4 classes"),
])
def test_class_count_mismatches_fail_at_config_load_with_the_key(fault, opts, message):
    with pytest.raises(ConfigError) as e:
        load_config(DEMO, opts)
    assert message in str(e.value)
    fault.seen(str(e.value), what=f"--opts {' '.join(opts)}")


@pytest.mark.fault("class weights inherited from a _base_ written for another class count",
                   command="python train.py --config child.yml")
def test_inherited_class_weights_are_checked_against_the_childs_classes(fault, tmp_path):
    base = tmp_path / "base.yml"
    base.write_text(f"_base_: {DEMO}\nloss:\n  types:\n    - type: CrossEntropyLoss\n"
                    f"      weight: [1.0, 1.0, 1.0, 1.0]\n  coef: [1, 1, 1, 1, 1]\n")
    child = tmp_path / "child.yml"
    child.write_text("_base_: base.yml\ntrain_dataset:\n  num_classes: 6\n"
                     "val_dataset:\n  num_classes: 6\n")
    with pytest.raises(ConfigError, match="loss.types.0.weight: 4 class weights for 6 classes") \
            as e:
        load_config(child)
    fault.seen(str(e.value))


@pytest.mark.fault("a _base_ that names a missing file", command="python train.py --config C")
def test_a_missing_base_names_the_config_that_referenced_it(fault, tmp_path):
    child = tmp_path / "child.yml"
    child.write_text("_base_: ../nowhere/base.yml\niters: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(child)
    assert f"nowhere/base.yml (named in _base_ of {child.resolve()})" in str(e.value)
    fault.seen(str(e.value))


@pytest.mark.fault("--resume_model with another --iters than the run was started with",
                   command="python train.py --resume_model RUN/iter_4 --iters 8")
def test_resuming_with_other_iters_says_loudly_what_changes(fault, finished_run, tmp_path,
                                                            caplog):
    train(small_cfg(8, ["lr_scheduler.warmup_iters=1"]),
          TrainOptions(save_dir=str(tmp_path / "longer"), save_interval=8,
                       resume_model=str(finished_run / "iter_4")))
    warning = next(r for r in caplog.records if "4-iteration run as a 8-iteration" in r.message)
    assert warning.levelname == "WARNING" and "lr schedule is recomputed" in warning.message
    now, was = re.search(r"([\d.e-]+) now, ([\d.e-]+) in the original", warning.message).groups()
    assert float(now) > float(was)  # the longer schedule has decayed less by iter 4
    fault.seen(warning.message, kept="the original run; the resumed one is marked as changed")


# ---------------------------------------------------------------- SIGKILL and resume
KILL_OPTS = ["--opts", *SMALL]


def _train_cmd(save_dir: Path, iters: int, *extra) -> list[str]:
    return ["train.py", "--config", str(DEMO), "--iters", str(iters), "--save_interval", "2",
            "--log_iters", "1", "--seed", "3", "--save_dir", str(save_dir), *extra, *KILL_OPTS]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = paddle.load(str(a / "model.pdparams")), paddle.load(str(b / "model.pdparams"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k].numpy(), wb[k].numpy(), err_msg=k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("full") / "full"
    r = run_script(*_train_cmd(run, 6))
    assert r.returncode == 0, r.stderr
    return run


@pytest.mark.fault("SIGKILL in the middle of training, then --resume_model",
                   command="kill -9 <train.py>; python train.py --resume_model RUN/iter_N")
def test_sigkill_during_training_then_resume_ends_identical(fault, uninterrupted, tmp_path):
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *_train_cmd(run, 6)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for line in proc.stdout:
        if "[TRAIN] iter: 3/6" in line:  # iter_2 is published before iteration 3 is logged
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    from segq.checkpoint import iteration_checkpoints
    last = iteration_checkpoints(run)[-1]
    r = run_script(*_train_cmd(run, 6, "--resume_model", str(last)))
    assert r.returncode == 0, r.stderr
    assert_same_weights(run / "iter_6", uninterrupted / "iter_6")
    fault.seen(f"resumed from {last.name}; iter_6 weights equal the uninterrupted run's",
               kept="every published checkpoint; the resumed run ends bit-identical")


KILL_IN_WRITE = """
import os, signal, sys
import segq.checkpoint as ck
real = ck.paddle.save
def save(obj, path, *a, **k):
    real(obj, path, *a, **k)
    if "iter_4.tmp" in str(path) and str(path).endswith("model.pdparams"):
        os.kill(os.getpid(), signal.SIGKILL)  # half of iter_4 written
ck.paddle.save = save
sys.argv = sys.argv[1:]
import runpy; runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.fault("SIGKILL while a checkpoint is being written",
                   command="kill -9 <train.py> during iter_4's write; --resume_model RUN/iter_2")
def test_sigkill_during_a_checkpoint_write_never_publishes_it(fault, uninterrupted, tmp_path):
    run = tmp_path / "killed"
    r = run_script("-c", KILL_IN_WRITE, *_train_cmd(run, 6))
    assert r.returncode == -signal.SIGKILL
    assert (run / "iter_4.tmp/model.pdparams").is_file()  # the kill did land mid-write
    assert not (run / "iter_4").exists()
    from segq.checkpoint import iteration_checkpoints
    assert [p.name for p in iteration_checkpoints(run)] == ["iter_2"]
    r = run_script(*_train_cmd(run, 6, "--resume_model", str(run / "iter_2")))
    assert r.returncode == 0, r.stderr
    assert_same_weights(run / "iter_6", uninterrupted / "iter_6")
    fault.seen("iter_4.tmp left unpublished; resumed from iter_2 to the same iter_6",
               kept="iter_2; the half-written iter_4 is never taken for a checkpoint")


def test_the_last_checkpoint_records_the_whole_runs_wall_time(monkeypatch, tmp_path):
    """compare_int8 reports a run's time from its last checkpoint: the final evaluation and
    the start-up count too (they were left out, 7.7 of a 9.2-minute QAT run)."""
    import json
    import segq.engine.workflows as workflows
    real = workflows.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(workflows, "evaluate", slow_evaluate)
    t0 = time.perf_counter()
    train(small_cfg(2), TrainOptions(save_dir=str(tmp_path / "r"), save_interval=2,
                                     do_eval=True))
    total = time.perf_counter() - t0
    state = json.loads((tmp_path / "r/iter_2/state.json").read_text())
    assert total > 1.0 and state["extra"]["wall_time_s"] >= total - 0.5
