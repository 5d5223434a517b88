"""Quiet by default: Paddle's own output (glog lines, oneDNN pass reports, its warnings,
PaddleSlim's loggers and bars) stays off unless --verbose; segq's lines and errors stay."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from segq.cpu_runtime import QUIET_MARK_ENV, VERBOSE_ENV, set_log_env

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/demo/bisenetv2_synthetic_96x128_300.yml"
# What Paddle and PaddleSlim print on their own in segq's runs (one pattern per source).
PADDLE_NOISE = [
    r"OMP_NUM_THREADS set to \d+, not 1",                  # import paddle
    r"PLEASE USE OMP_NUM_THREADS WISELY",
    r"site-packages/(paddle|paddleslim|_distutils_hack)/.*Warning:",  # Python warnings
    r"^\s*warnings\.warn\(",
    r"^I\d{4} \d\d:\d\d:\d\d\.\d+ ",                     # glog INFO
    r"---\s+(quantized|squashed) \d+",                   # oneDNN INT8 passes (C++)
    r"^\w{3} \w{3} \d\d \d\d:\d\d:\d\d-(INFO|WARNING): ",  # Paddle's quantization loggers
    r"Run batch:\|",                                     # their progress bars
]


def noise_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if any(re.search(p, line) for p in PADDLE_NOISE)]


def clean_env(**extra) -> dict:
    """This environment without what the test process's own quiet defaults put in it (the
    conftest calls set_cpu_defaults), so each run decides for itself."""
    env = dict(os.environ)
    for key in filter(None, env.pop(QUIET_MARK_ENV, "").split(",")):
        env.pop(key, None)
    env.pop(VERBOSE_ENV, None)
    env.update(OMP_NUM_THREADS="2", **extra)
    return env


def run(args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env or clean_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def train_args(save_dir: Path, *extra) -> list[str]:
    return ["train.py", "--config", CONFIG, "--iters", "1", "--batch_size", "2",
            "--log_iters", "1", "--save_interval", "1", "--save_dir", str(save_dir),
            *extra, "--opts", "train_dataset.num_samples=2", "val_dataset.num_samples=1"]


def test_training_is_quiet_by_default_and_verbose_on_request(tmp_path: Path):
    quiet = run(train_args(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stdout
    assert "[TRAIN] iter: 1/1" in quiet.stdout
    assert noise_lines(quiet.stdout) == [], quiet.stdout

    verbose = run(train_args(tmp_path / "verbose", "--verbose"))
    assert verbose.returncode == 0, verbose.stdout
    assert "[TRAIN] iter: 1/1" in verbose.stdout
    # printed by `import paddle` with OMP_NUM_THREADS=2, and by BatchNorm in training
    assert "OMP_NUM_THREADS set to 2, not 1" in verbose.stdout
    assert "we now always track global mean and variance" in verbose.stdout


_NATIVE = textwrap.dedent("""
    import os, sys
    from segq.cpu_runtime import native_stderr_filtered
    with native_stderr_filtered():
        os.write(2, b"\\x1b[37m---    quantized 51 fused_conv2d ops \\x1b[0m\\n")
        os.write(2, b"I1203 10:23:23.042225 22762 program_interpreter.cc:257] New Executor\\n")
        os.write(2, b"native kept\\n")
        print("python kept", file=sys.stderr)
        if sys.argv[1] == "crash":
            os.abort()
    print("after", file=sys.stderr)
""")


@pytest.mark.parametrize("mode", ["normal", "crash"])
def test_native_stderr_filter_drops_pass_reports_only(mode):
    """C++ writes past glog (oneDNN INT8 pass reports) are filtered at file descriptor 2;
    other lines get through in order, also when the process dies inside the block."""
    r = subprocess.run([sys.executable, "-c", _NATIVE, mode], cwd=REPO, env=clean_env(),
                       stderr=subprocess.PIPE, text=True, timeout=60)
    lines = r.stderr.splitlines()
    assert noise_lines(r.stderr) == [], r.stderr
    assert lines[:2] == ["native kept", "python kept"], r.stderr
    if mode == "crash":
        assert r.returncode != 0
    else:
        assert r.returncode == 0 and lines[2:] == ["after"], r.stderr


def test_native_stderr_filter_is_off_when_verbose():
    r = subprocess.run([sys.executable, "-c", _NATIVE, "normal"], cwd=REPO,
                       env=clean_env(SEGQ_VERBOSE="1"), stderr=subprocess.PIPE, text=True,
                       timeout=60)
    assert r.returncode == 0
    assert len(noise_lines(r.stderr)) == 2, r.stderr


def test_log_env_keeps_user_values_and_verbose_takes_back_only_segqs():
    env = {}
    set_log_env(env, verbose=False)
    assert env == {"GLOG_minloglevel": "1", QUIET_MARK_ENV: "GLOG_minloglevel"}
    set_log_env(env, verbose=True)  # a --verbose child of a quiet segq process
    assert env == {}

    user = {"GLOG_minloglevel": "0"}
    set_log_env(user, verbose=False)
    assert user == {"GLOG_minloglevel": "0"}
    set_log_env(user, verbose=True)
    assert user == {"GLOG_minloglevel": "0"}


def test_quantization_bars_and_loggers_are_quiet_inside_the_adapter(monkeypatch):
    import logging

    from paddle.static.quantization import post_training_quantization as ptq_module

    from segq.cpu_runtime import set_verbose
    from segq.quant import paddleslim_adapter as adapter

    bar = ptq_module.tqdm
    logger = logging.getLogger(ptq_module.__name__)
    monkeypatch.setattr(logger, "level", logging.INFO)  # Paddle's own; restored after
    set_verbose(True)
    try:
        with adapter._quiet_paddle():
            assert ptq_module.tqdm is bar and logger.level == logging.INFO
        set_verbose(False)
        with adapter._quiet_paddle():
            assert ptq_module.tqdm is adapter._NoBar
            assert logger.level == logging.WARNING
            with ptq_module.tqdm(total=2, bar_format="Sampling stage, Run batch:|{bar}|") as t:
                t.update()
        assert ptq_module.tqdm is bar
    finally:
        set_verbose(None)
