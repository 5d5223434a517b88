import os; os.environ.setdefault("OMP_NUM_THREADS", "2")  # noqa: E401,E702  before paddle/cv2
from segq.cpu_runtime import set_cpu_defaults; set_cpu_defaults()  # noqa: E402,E702  MKL on AMD

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

# the shared data folder sits beside the repository: /work/main/../shared/data/camvid
CAMVID_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    if not (CAMVID_ROOT / "train.txt").is_file():
        pytest.skip(f"CamVid not found at {CAMVID_ROOT}")
    return CAMVID_ROOT


@pytest.fixture(scope="session")
def fp32_run(tmp_path_factory) -> Path:
    """Weights of the demo BiSeNetV2 (tests.helpers.SMALL data) trained for 30 iterations,
    so its activations have trained ranges; shared by the PTQ and analysis tests."""
    from segq.engine.workflows import TrainOptions
    from segq.engine.workflows import train
    from tests.helpers import small_cfg

    run = tmp_path_factory.mktemp("fp32") / "run"
    train(small_cfg(30, ["lr_scheduler.warmup_iters=5"]),
          TrainOptions(save_dir=str(run), save_interval=30))
    return run / "iter_30" / "model.pdparams"


def write_pair(root: Path, name: str, img: np.ndarray, label: np.ndarray | None) -> None:
    """Write ``img`` (HWC RGB uint8) to images/<name>.png and ``label`` to labels/<name>.png."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / "images" / f"{name}.png"), img[:, :, ::-1])
    if label is not None:
        assert cv2.imwrite(str(root / "labels" / f"{name}.png"), label)


@pytest.fixture
def tiny_dataset_dir(tmp_path: Path) -> Path:
    """5 image/label pairs (24x32, 3 classes + 255) and train/val/test lists in tmp_path."""
    rng = np.random.default_rng(0)
    names = [f"im{i}" for i in range(5)]
    for name in names:
        label = rng.integers(0, 3, (24, 32)).astype(np.uint8)
        label[0, :4] = 255
        img = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
        write_pair(tmp_path, name, img, label)
    line = "images/{0}.png labels/{0}.png\n"
    (tmp_path / "train.txt").write_text("".join(line.format(n) for n in names[:3]))
    (tmp_path / "val.txt").write_text("\n" + line.format(names[3]) + "\n")
    (tmp_path / "test.txt").write_text(f"images/{names[4]}.png\n")
    return tmp_path


# ---------------------------------------------------------------- the fault table
# Tests marked ``@pytest.mark.fault("what is injected", command="...")`` record, through
# the ``fault`` fixture, the line the user sees and what was kept. ``pytest
# --fault-table docs/reliability.md`` writes them as the table of faults tried;
# tests/test_fault_table.py fails when a marked test is missing from that file.
FAULT_ROWS: dict[str, dict] = {}


def pytest_addoption(parser):
    parser.addoption("--fault-table", default=None, metavar="PATH",
                     help="write the table of injected faults and bad inputs (Markdown)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fault(what, command=''): a fault injected or a bad input tried; "
                   "listed in docs/reliability.md")


def pytest_collection_modifyitems(config, items):
    config.fault_ids = sorted(i.nodeid for i in items if i.get_closest_marker("fault"))


class FaultRecord:
    def __init__(self, nodeid: str, what: str, command: str):
        self.row = {"id": nodeid, "what": what, "command": command, "seen": None,
                    "kept": None, "outcome": "not run"}

    def seen(self, message: str, kept: str = "nothing written", what: str | None = None,
             command: str | None = None) -> None:
        """Record the message the user saw (its last non-empty line if several)."""
        lines = [ln.strip() for ln in str(message).strip().splitlines() if ln.strip()]
        self.row["seen"] = _stable(lines[-1]) if lines else "(nothing)"
        self.row["kept"] = kept
        if what is not None:
            self.row["what"] = what
        if command is not None:
            self.row["command"] = command


_TMP = re.compile(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/\s]+/")
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def _stable(line: str) -> str:
    """The line without what changes from run to run (pytest's tmp dirs, log timestamps),
    so the table only changes when a message does."""
    return _LOG_PREFIX.sub("", _TMP.sub(".../", line)).removeprefix("- ")


@pytest.fixture
def fault(request) -> FaultRecord:
    marker = request.node.get_closest_marker("fault")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `fault` without the fault marker")
    rec = FaultRecord(request.node.nodeid, marker.args[0] if marker.args else "",
                      marker.kwargs.get("command", ""))
    FAULT_ROWS[request.node.nodeid] = rec.row
    return rec


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    row = FAULT_ROWS.get(item.nodeid)
    if row is not None and (report.when == "call" or report.failed):
        row["outcome"] = "ok" if report.passed else report.outcome


def _cell(text) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--fault-table")
    if not path:
        return
    rows = sorted(FAULT_ROWS.values(), key=lambda r: r["id"])
    out = ["# Faults injected and bad inputs tried", "",
           "Generated by `bash scripts/test.sh tests -m fault --fault-table docs/reliability.md`: "
           "one row per test marked `fault`; the message is what the user sees "
           "(stderr's last line for a command).", "",
           "| fault or bad input | command | what the user sees | kept | test | result |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(_cell(x) for x in (
            r["what"], f"`{r['command']}`" if r["command"] else "", r["seen"], r["kept"],
            f"`{r['id']}`", r["outcome"])) + " |")
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")
