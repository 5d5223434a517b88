"""Bad training data and Ctrl-C: the run stops within seconds with one line naming the file,
its list file and line, whatever --num_workers is; skip_bad_files trains on without them;
tools/check_dataset.py finds them all before a run."""
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import segq.data  # noqa: F401  (registers datasets and transforms)
from segq.data.check import check_dataset, check_files_exist, missing_files
from segq.data.dataset import Dataset
from segq.data.errors import DataError, ImageDecodeError, MissingFileError
from segq.data.io import read_image, read_label
from segq.data.list_file import read_list_file
from segq.data.loader import build_eval_loader, build_train_loader

from conftest import write_pair

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs/demo/bisenetv2_synthetic_96x128_300.yml"
H, W, N, CLASSES = 48, 64, 8, 4  # BiSeNetV2 needs inputs of 32+ pixels a side
BAD = 5                          # the sample made bad: line BAD + 1 of train.txt
TIMEOUT = 90                     # the runs these tests replace hung forever


def make_dataset(root: Path, n: int = N) -> Path:
    """``n`` pairs of 64x48 PNGs (classes 0..3) listed in train.txt, one pair a line."""
    rng = np.random.default_rng(0)
    for i in range(n):
        write_pair(root, f"im{i}", rng.integers(0, 256, (H, W, 3)).astype(np.uint8),
                   rng.integers(0, CLASSES, (H, W)).astype(np.uint8))
    (root / "train.txt").write_text("".join(f"images/im{i}.png labels/im{i}.png\n"
                                            for i in range(n)))
    return root


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def jpeg_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def list_jpeg_image(root: Path, index: int, data: bytes) -> None:
    """Make line ``index + 1`` of train.txt point at a JPEG image holding ``data``."""
    (root / "images" / f"im{index}.jpg").write_bytes(data)
    lines = (root / "train.txt").read_text().splitlines()
    lines[index] = f"images/im{index}.jpg labels/im{index}.png"
    (root / "train.txt").write_text("\n".join(lines) + "\n")


def _missing_image(root):
    (root / f"images/im{BAD}.png").unlink()
    return root / f"images/im{BAD}.png", "image file not found"


def _missing_label(root):
    (root / f"labels/im{BAD}.png").unlink()
    return root / f"labels/im{BAD}.png", "label file not found"


def _truncated_png(root):
    truncate(root / f"images/im{BAD}.png")
    return root / f"images/im{BAD}.png", "truncated: the PNG ends before its IEND chunk"


def _truncated_jpeg(root):
    img = np.random.default_rng(1).integers(0, 256, (H, W, 3)).astype(np.uint8)
    data = jpeg_bytes(img)
    list_jpeg_image(root, BAD, data[:len(data) * 2 // 3])
    return root / f"images/im{BAD}.jpg", "truncated: the JPEG has no end-of-image marker"


def _label_out_of_range(root):
    label = np.zeros((H, W), np.uint8)
    label[3, 4] = 9
    cv2.imwrite(str(root / f"labels/im{BAD}.png"), label)
    return root / f"labels/im{BAD}.png", "has values 9; expected class ids 0..3"


def _size_mismatch(root):
    cv2.imwrite(str(root / f"labels/im{BAD}.png"), np.zeros((H // 2, W // 2), np.uint8))
    return root / f"labels/im{BAD}.png", "image and label sizes differ"


FAULTS = {
    "a listed training image is missing": _missing_image,
    "a listed training label is missing": _missing_label,
    "a training image is a truncated PNG": _truncated_png,
    "a training image is a truncated JPEG (OpenCV decodes it into garbage)": _truncated_jpeg,
    "a training label holds a value outside the classes (not ignore_index)":
        _label_out_of_range,
    "a training image and its label differ in size": _size_mismatch,
}


def dataset_opt(root: Path, extra: str = "") -> str:
    return (f"train_dataset={{type: Dataset, dataset_root: '{root}', train_path: train.txt, "
            f"num_classes: {CLASSES}, transforms: [{{type: Normalize}}]{extra}}}")


def train_cmd(root: Path, save_dir: Path, num_workers: int, iters: int = 2,
              extra: str = "", *flags: str) -> list[str]:
    # 8 samples in batches of 4: the first two iterations read every sample once
    return [sys.executable, "train.py", "--config", str(DEMO), "--save_dir", str(save_dir),
            "--iters", str(iters), "--num_workers", str(num_workers), "--log_iters", "1",
            *flags, "--opts", dataset_opt(root, extra), "batch_size=4"]


def run(cmd: list[str], timeout: float = TIMEOUT):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    return r, time.perf_counter() - t0


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


# ------------------------------------------------------------------ train.py on bad data
@pytest.mark.fault("a bad training sample (see the rows below)", command="python train.py "
                   "--config C --num_workers N")
@pytest.mark.parametrize("num_workers, what", [
    *((0, what) for what in FAULTS),
    (2, "a listed training image is missing"),
    (2, "a training label holds a value outside the classes (not ignore_index)"),
])
def test_bad_sample_stops_training_with_one_line(fault, tmp_path, num_workers, what):
    root = make_dataset(tmp_path / "data")
    path, problem = FAULTS[what](root)
    r, seconds = run(train_cmd(root, tmp_path / "run", num_workers))
    assert r.returncode == 2, r.stderr[-3000:]
    assert seconds < TIMEOUT / 2
    assert "Traceback" not in r.stderr
    [line] = error_lines(r.stderr)
    assert str(path) in line and problem in line, line
    assert f"listed in {root / 'train.txt'}, line {BAD + 1}" in line, line
    assert not (tmp_path / "run" / "iter_1").exists()
    fault.seen(r.stderr, kept="no checkpoint (the run stops at the first batch holding it)",
               what=f"{what} (--num_workers {num_workers})",
               command=f"python train.py --config C --num_workers {num_workers}")


@pytest.mark.parametrize("make_bad", list(FAULTS.values()), ids=list(FAULTS))
def test_bad_sample_raises_data_error_with_list_line(tmp_path, make_bad):
    root = make_dataset(tmp_path)
    path, problem = make_bad(root)
    ds = Dataset(root, CLASSES, train_path="train.txt")
    with pytest.raises(DataError) as e:
        ds[(BAD, 123)]
    assert (e.value.path, e.value.list_path, e.value.line) == (
        str(path), str(root / "train.txt"), BAD + 1)
    assert problem in str(e.value) and str(e.value).endswith(f"line {BAD + 1})")
    ds[(BAD - 1, 123)]  # its neighbour is fine


@pytest.mark.parametrize("workers", [0, 2])
def test_train_loader_raises_the_data_error_itself(tmp_path, workers):
    """The exception crosses the worker process with its fields (paddle's DataLoader
    re-raised only its type, with the worker's traceback as the message)."""
    root = make_dataset(tmp_path)
    _missing_label(root)
    ds = Dataset(root, CLASSES, train_path="train.txt")
    batches = build_train_loader(ds, 4, workers, seed=0)
    with pytest.raises(MissingFileError) as e:
        for _ in range(2):  # 8 samples, batch 4: both batches of epoch 0
            next(batches)
    assert (e.value.path, e.value.line) == (str(root / f"labels/im{BAD}.png"), BAD + 1)
    assert isinstance(e.value, FileNotFoundError)


def test_eval_loader_with_workers_raises_the_data_error(tmp_path):
    root = make_dataset(tmp_path)
    _truncated_png(root)
    (root / "val.txt").write_text((root / "train.txt").read_text())
    ds = Dataset(root, CLASSES, mode="val", val_path="val.txt")
    with pytest.raises(ImageDecodeError, match=rf"line {BAD + 1}\)$"):
        list(build_eval_loader(ds, 2))


# ------------------------------------------------------------------ list lines, errors
def test_list_entries_keep_their_line_and_stay_pairs(tmp_path):
    import pickle
    f = tmp_path / "l.txt"
    f.write_text("\n  \na.png b.png\n\nc.png d.png\n")
    entries = read_list_file(f, "root")
    assert entries == [("root/a.png", "root/b.png"), ("root/c.png", "root/d.png")]
    assert [(e.list_path, e.line) for e in entries] == [(str(f), 3), (str(f), 5)]
    img, label = entries[1]
    assert (img, label) == (entries[1].image, entries[1].label)
    again = pickle.loads(pickle.dumps(entries[1]))
    assert again == entries[1] and again.line == 5


def test_data_error_pickles_with_its_location():
    import pickle
    e = MissingFileError("image file not found: a.png", "a.png").locate("t.txt", 7)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is MissingFileError and str(back) == str(e)
    assert (back.path, back.list_path, back.line) == ("a.png", "t.txt", 7)
    assert str(e) == "image file not found: a.png (listed in t.txt, line 7)"


# ------------------------------------------------------------------ truncated files (io)
def read_image_bytes(data: bytes, tmp_path: Path) -> np.ndarray:
    p = tmp_path / "whole.jpg"
    p.write_bytes(data)
    return read_image(p)


def test_truncated_jpeg_is_an_error_and_padding_after_its_end_is_not(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3)).astype(np.uint8)
    data = jpeg_bytes(img)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:-300])
    assert cv2.imdecode(np.frombuffer(data[:-300], np.uint8), cv2.IMREAD_COLOR) is not None, \
        "OpenCV refuses this truncated JPEG by itself: the test shows nothing"
    with pytest.raises(ImageDecodeError, match=r"cut\.jpg is truncated: the JPEG has no "
                                               r"end-of-image marker \(FFD9\)"):
        read_image(cut)
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data + b"\x00" * 100)
    np.testing.assert_array_equal(read_image(padded), read_image_bytes(data, tmp_path))


@pytest.mark.parametrize("reader", [read_image, read_label])
def test_truncated_png_names_the_missing_iend(tmp_path, reader):
    p = tmp_path / "x.png"
    assert cv2.imwrite(str(p), np.zeros((H, W), np.uint8))
    truncate(p, keep=0.95)
    with pytest.raises(ImageDecodeError, match=r"x\.png is truncated: the PNG ends before "
                                               r"its IEND chunk"):
        reader(p)


def test_truncated_palette_png_label_is_an_error(tmp_path):
    from PIL import Image
    im = Image.fromarray(np.zeros((H, W), np.uint8), mode="P")
    im.putpalette([0] * 768)
    im.save(tmp_path / "p.png")
    truncate(tmp_path / "p.png", keep=0.9)
    with pytest.raises(ImageDecodeError, match="truncated"):
        read_label(tmp_path / "p.png")


# ------------------------------------------------------------------ skip_bad_files
class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def segq_warnings():
    handler = Collect()
    log = logging.getLogger("segq")
    log.addHandler(handler)
    yield handler.lines
    log.removeHandler(handler)


def test_skip_bad_files_replaces_by_the_next_good_sample_with_the_same_seed(tmp_path):
    root = make_dataset(tmp_path)
    _truncated_jpeg(root)
    (root / f"images/im{BAD + 1}.png").unlink()  # two bad in a row: BAD and BAD + 1
    tf = [{"type": "RandomHorizontalFlip"}, {"type": "RandomDistort"}, {"type": "Normalize"}]
    ds = Dataset(root, CLASSES, train_path="train.txt", transforms=tf, skip_bad_files=True)
    s = ds[(BAD, 99)]
    want = ds[(BAD + 2, 99)]
    np.testing.assert_array_equal(s["img"], want["img"])
    np.testing.assert_array_equal(s["label"], want["label"])
    assert [e.line for e in s["skipped"]] == [BAD + 1, BAD + 2]
    last = Dataset(root, CLASSES, train_path="train.txt", skip_bad_files=True)
    (root / f"images/im{N - 1}.png").unlink()
    assert last[(N - 1, 5)]["img_path"].endswith("im0.png")  # wraps around


def test_skip_bad_files_with_every_sample_bad_is_an_error(tmp_path):
    root = make_dataset(tmp_path, n=2)
    for i in range(2):
        (root / f"labels/im{i}.png").unlink()
    ds = Dataset(root, CLASSES, train_path="train.txt", skip_bad_files=True)
    with pytest.raises(DataError, match="all 2 samples are bad"):
        ds[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_skipping_keeps_batches_a_function_of_the_iteration(tmp_path, workers,
                                                            segq_warnings):
    root = make_dataset(tmp_path)
    _label_out_of_range(root)
    tf = [{"type": "RandomHorizontalFlip"}, {"type": "RandomDistort"}, {"type": "Normalize"}]
    ds = Dataset(root, CLASSES, train_path="train.txt", transforms=tf, skip_bad_files=True)
    full = build_train_loader(ds, 4, workers, seed=3)
    seen = [next(full)[0].numpy() for _ in range(6)]  # three epochs: the bad one thrice
    resumed = build_train_loader(ds, 4, 0, seed=3, start_iter=4)
    for i in (4, 5):
        np.testing.assert_array_equal(next(resumed)[0].numpy(), seen[i])
    bad = str(root / f"labels/im{BAD}.png")
    assert list(full.skipped_files) == [bad]
    mentions = [w for w in segq_warnings if bad in w]
    assert len(mentions) == 2 and "(1 so far)" in mentions[0], segq_warnings  # once per loader
    assert f"line {BAD + 1}" in mentions[0]


@pytest.mark.fault("a truncated training JPEG with train_dataset.skip_bad_files: true",
                   command="python train.py --config C --opts "
                           "train_dataset.skip_bad_files=true")
def test_skip_bad_files_trains_on_and_lists_what_it_skipped(fault, tmp_path):
    root = make_dataset(tmp_path / "data")
    path, _ = _truncated_jpeg(root)
    r, _ = run(train_cmd(root, tmp_path / "run", 0, 2, ", skip_bad_files: true",
                         "--save_interval", "2"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run/iter_2/model.pdparams").is_file()
    skipped = [ln for ln in r.stdout.splitlines() if "skip_bad_files" in ln]
    assert len(skipped) == 2, r.stdout  # the file when met, then the total at the end
    assert str(path) in skipped[0] and f"line {BAD + 1}" in skipped[0]
    assert "1 bad training file(s) were skipped" in skipped[1] and str(path) in skipped[1]
    fault.seen(skipped[0], kept="the run trains on; each skipped file is logged as met and "
                                "all of them again at the end")


# ------------------------------------------------------------------ Ctrl-C
@pytest.mark.fault("Ctrl-C (SIGINT to the process group) during training",
                   command="python train.py --config C --num_workers N; Ctrl-C")
@pytest.mark.parametrize("num_workers", [0, 2])
def test_ctrl_c_stops_training_and_names_the_checkpoint_to_resume(fault, tmp_path,
                                                                  num_workers):
    save = tmp_path / "run"
    cmd = [sys.executable, "train.py", "--config", str(DEMO), "--save_dir", str(save),
           "--iters", "1000", "--save_interval", "2", "--log_iters", "1",
           "--num_workers", str(num_workers), "--opts", "train_dataset.num_samples=16",
           "train_dataset.image_size=[48, 64]", "batch_size=4"]
    # its own process group, so the signal reaches the workers too, as a Ctrl-C would
    # SIGINT back to its default in the child: a test run started in the background
    # (`cmd &` in a script, nohup, some CI runners) ignores it, and children inherit that
    proc = subprocess.Popen(cmd, cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in proc.stdout:
            if "[TRAIN] iter: 3/" in line:  # iter_2 is published before iter 3 is logged
                break
        t0 = time.perf_counter()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
        seconds = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert seconds < 20, seconds
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    newest = sorted(save.glob("iter_*"), key=lambda p: int(p.name[5:]))[-1]
    assert last.startswith("interrupted after iter "), last
    assert f"last good checkpoint: {newest}; resume with --resume_model {newest}" in last
    fault.seen(last, what=f"Ctrl-C during training (--num_workers {num_workers})",
               command=f"python train.py --config C --num_workers {num_workers}; Ctrl-C",
               kept="every checkpoint written; the message names the newest")


def test_interrupt_before_the_first_checkpoint_says_none_was_written(tmp_path):
    from segq.engine.hooks import CheckpointHook
    from segq.engine.trainer import Hook, Trainer, TrainingInterrupted

    class CtrlC(Hook):
        def after_iter(self, trainer, out):
            raise KeyboardInterrupt

    class FakeStep(Trainer):
        def train_step(self, img, label):
            return 0.0, []

    batches = iter([(np.zeros((1, 3, 2, 2)), np.zeros((1, 2, 2)))] * 3)
    trainer = FakeStep(None, None, None, batches, 10,
                       [CtrlC(), CheckpointHook(tmp_path / "run", 4)])
    with pytest.raises(TrainingInterrupted) as e:
        trainer.fit()
    assert str(e.value) == (f"interrupted after iter 1/10; no checkpoint was written to "
                            f"{tmp_path / 'run'} yet (the next is due at iter 4); start again "
                            f"with --overwrite")


# ------------------------------------------------------------------ checks before a run
def test_check_files_exist_names_the_first_missing_and_the_count(tmp_path, segq_warnings):
    root = make_dataset(tmp_path)
    check_files_exist(Dataset(root, CLASSES, train_path="train.txt"))  # all there
    for i in (2, 4, 6, 7):
        (root / f"labels/im{i}.png").unlink()
    ds = Dataset(root, CLASSES, train_path="train.txt")
    assert [e.line for e in missing_files(ds)] == [3, 5, 7, 8]
    with pytest.raises(MissingFileError) as e:
        check_files_exist(ds)
    msg = str(e.value)
    assert msg.startswith(f"4 of the files listed for {N} train samples are missing: label "
                          f"file not found: {root / 'labels/im2.png'} (listed in "
                          f"{root / 'train.txt'}, line 3);")
    assert "; and 1 more" in msg and "im7.png" not in msg
    skipping = Dataset(root, CLASSES, train_path="train.txt", skip_bad_files=True)
    check_files_exist(skipping)  # a warning only: those samples will be skipped
    assert any("4 of the files" in w and "will be skipped" in w for w in segq_warnings)


def many_problems(root: Path) -> dict[int, str]:
    """A dataset with a problem on several lines; returns line -> expected text."""
    make_dataset(root)
    (root / "images/im1.png").unlink()
    truncate(root / "labels/im2.png")
    cv2.imwrite(str(root / "labels/im3.png"), np.zeros((H // 2, W), np.uint8))
    lab = np.full((H, W), 7, np.uint8)
    cv2.imwrite(str(root / "labels/im4.png"), lab)
    _truncated_jpeg(root)  # index BAD
    return {2: "image file not found", 3: "is truncated: the PNG", 4: "sizes differ",
            5: "has values 7", BAD + 1: "is truncated: the JPEG"}


@pytest.mark.parametrize("workers", [0, 2])
def test_check_dataset_reports_every_problem_with_its_line(tmp_path, workers):
    expected = many_problems(tmp_path)
    ds = Dataset(tmp_path, CLASSES, train_path="train.txt",
                 transforms=[{"type": "RandomPaddingCrop", "crop_size": [W, H + 1]}])
    from segq.data.check import train_crop_size
    assert train_crop_size(ds) == (W, H + 1)
    report = check_dataset(ds, "train", workers, crop_size=(W, H + 1), progress=False)
    assert not report.ok
    got = {e.line: str(e) for e in report.errors}
    assert sorted(got) == sorted(expected)
    for line, text in expected.items():
        assert text in got[line] and f"line {line})" in got[line]
    # every decodable image is smaller than the crop in height
    assert [p for p, _, _ in report.small_images] == [
        str(tmp_path / f"images/im{i}.png") for i in range(N) if i not in (1, BAD)]
    # every decodable label is counted (all but the truncated one), values >= 4 in no class
    labels = [cv2.imread(str(tmp_path / f"labels/im{i}.png"), cv2.IMREAD_UNCHANGED)
              for i in range(N) if i != 2]
    want = np.bincount(np.concatenate([lb.ravel() for lb in labels]))[:CLASSES]
    np.testing.assert_array_equal(report.class_pixels, want)
    assert report.ignore_pixels == 0
    lines = report.lines()
    assert lines[-1].startswith(f"train: {N} samples of Dataset") and \
        f"{len(expected)} problem(s) in {len(expected)} file(s)" in lines[-1]


@pytest.mark.fault("a dataset with missing, truncated, mis-sized and out-of-range files, "
                   "checked before training", command="python tools/check_dataset.py "
                                                      "--config C")
def test_check_dataset_cli_lists_problems_and_exits_2(fault, tmp_path):
    expected = many_problems(tmp_path / "data")
    cmd = [sys.executable, "tools/check_dataset.py", "--config", str(DEMO),
           "--num_workers", "2", "--opts", dataset_opt(tmp_path / "data")]
    r, seconds = run(cmd)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    problems = [ln for ln in r.stdout.splitlines() if ln.startswith("train: ") and "line" in ln]
    assert len(problems) == len(expected), r.stdout
    for line, text in expected.items():
        assert any(text in p and f"line {line})" in p for p in problems), (line, r.stdout)
    assert "class pixel shares: 0 " in r.stdout
    [err] = error_lines(r.stderr)
    assert f"{len(expected)} problem(s) in the train data" in err
    fault.seen(r.stderr, kept="nothing is written; every problem is listed on stdout")


def test_check_dataset_cli_passes_a_clean_dataset(tmp_path):
    make_dataset(tmp_path / "data")
    cmd = [sys.executable, "tools/check_dataset.py", "--config", str(DEMO),
           "--num_workers", "0", "--opts", dataset_opt(tmp_path / "data")]
    r, _ = run(cmd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1].endswith("no problems")


def _die(_):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_is_reported_not_waited_for():
    from segq.data.workers import ordered_map
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"\(pid \d+\) was killed by signal 9 \(SIGKILL: "
                                           r"often the out-of-memory killer"):
        list(ordered_map(_die, [1, 2], 1))
    assert time.perf_counter() - t0 < 10


def test_generated_datasets_have_no_files_to_check():
    from segq.data.synthetic import SyntheticScenes
    ds = SyntheticScenes(num_samples=2)
    check_files_exist(ds)
    assert check_dataset(ds, progress=False).note.startswith("generated samples")
