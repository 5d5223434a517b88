"""Bad inputs to the deployment and prediction CLIs, run as a user runs them: unreadable
images in a folder (stop with one line, or --skip_bad), equal names in sub-folders, an output
folder inside the image folder, and INT8 asked of an FP32 export."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segq.deploy.export import export_inference_model
from tests.helpers import DEMO
from tests.zoo import trained_like

REPO = Path(__file__).resolve().parents[1]
INFER = "deploy/python/infer.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=120)


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def fp32_dir(tmp_path_factory) -> Path:
    """A random-weight FP32 export with a dynamic input shape, of the demo config's network
    (4 classes), so the demo config can evaluate it."""
    return export_inference_model(trained_like("BiSeNetV2", 4),
                                  tmp_path_factory.mktemp("export") / "fp32",
                                  deploy_transforms=[{"type": "Normalize"}])


def write_image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def write_corrupt(path: Path) -> Path:
    """A .png whose content is not an image (a truncated download, a mis-named file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return path


@pytest.fixture
def folder_with_a_bad_image(tmp_path) -> Path:
    """a.png, b.png (corrupt), c.png: sorted, the bad one comes after one good one."""
    folder = tmp_path / "in"
    write_image(folder / "a.png", 0)
    write_corrupt(folder / "b.png")
    write_image(folder / "c.png", 1)
    return folder


def infer(fp32_dir: Path, image_path: Path, save_dir: Path, *extra: str):
    return run(INFER, "--config", str(fp32_dir / "deploy.yaml"), "--image_path",
               str(image_path), "--save_dir", str(save_dir), *extra)


def masks(save_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(save_dir)) for p in save_dir.rglob("*_mask.png"))


# ---------------------------------------------------------------- unreadable images
@pytest.mark.fault("a corrupt image in the middle of a folder",
                   command="python deploy/python/infer.py --image_path DIR")
def test_infer_stops_at_a_bad_image_and_says_what_was_written(fault, fp32_dir,
                                                               folder_with_a_bad_image,
                                                               tmp_path):
    out = tmp_path / "out"
    # batch 2: a.png waits for a partner when b.png fails, and is still written
    r = infer(fp32_dir, folder_with_a_bad_image, out, "--batch_size", "2")
    assert r.returncode == 2, r.stderr[-2000:]
    line = last_line(r.stderr)
    assert line.startswith("error: ") and f"{folder_with_a_bad_image / 'b.png'} " in line
    assert f"stopped after writing 1 of 3 masks to {out}" in line and "--skip_bad" in line
    assert "Traceback" not in r.stderr
    assert masks(out) == ["a_mask.png"]
    fault.seen(r.stderr, kept="the masks before it (a_mask.png); the run stops")


@pytest.mark.fault("a corrupt image in the middle of a folder, with --skip_bad",
                   command="python deploy/python/infer.py --image_path DIR --skip_bad")
def test_infer_skip_bad_writes_the_rest_and_lists_the_skipped(fault, fp32_dir,
                                                               folder_with_a_bad_image,
                                                               tmp_path):
    out = tmp_path / "out"
    r = infer(fp32_dir, folder_with_a_bad_image, out, "--skip_bad", "--batch_size", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_line(r.stderr) == "warning: skipped 1 of 3 images that could not be read: b.png"
    reason = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: skipped b.png: ")]
    assert len(reason) == 1 and str(folder_with_a_bad_image / "b.png") in reason[0]
    assert "3 images, 2 masks and overlays in" in r.stdout
    assert masks(out) == ["a_mask.png", "c_mask.png"]
    fault.seen(r.stderr, kept="masks of every readable image")


@pytest.mark.fault("--skip_bad on a folder where no image can be read",
                   command="python deploy/python/infer.py --image_path DIR --skip_bad")
def test_infer_skip_bad_fails_when_nothing_could_be_read(fault, fp32_dir, tmp_path):
    folder = tmp_path / "in"
    write_corrupt(folder / "a.png")
    (folder / "b.jpg").write_bytes(b"")
    r = infer(fp32_dir, folder, tmp_path / "out", "--skip_bad")
    assert r.returncode == 2, r.stderr[-2000:]
    line = last_line(r.stderr)
    assert line.startswith("error: none of the 2 images could be read, nothing written")
    assert "a.png" in line
    assert not list((tmp_path / "out").rglob("*.png"))
    fault.seen(r.stderr)


# ---------------------------------------------------------------- folders
@pytest.mark.fault("two images named a.png in different sub-folders",
                   command="python predict.py --image_path DIR")
def test_predict_mirrors_sub_folders_so_equal_names_do_not_overwrite(fault, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "x" / "a.png", 0)
    write_image(folder / "y" / "a.png", 1)
    out = tmp_path / "out"
    r = run("predict.py", "--config", DEMO, "--image_path", str(folder), "--save_dir", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert masks(out) == ["x/a_mask.png", "y/a_mask.png"]
    assert "2 images, 2 masks and overlays in" in r.stdout and "2 sub-folders mirrored" in r.stdout
    fault.seen(last_line(r.stdout), kept="both masks, as x/a_mask.png and y/a_mask.png")


@pytest.mark.fault("a corrupt image given to predict.py, with and without --skip_bad",
                   command="python predict.py --image_path DIR [--skip_bad]")
def test_predict_reads_bad_images_as_infer_does(fault, folder_with_a_bad_image, tmp_path):
    out = tmp_path / "out"
    base = ["predict.py", "--config", DEMO, "--image_path", str(folder_with_a_bad_image)]
    r = run(*base, "--save_dir", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "stopped after writing 1 of 3 masks" in last_line(r.stderr)
    r = run(*base, "--save_dir", str(out), "--skip_bad")
    assert r.returncode == 0, r.stderr[-2000:]
    assert last_line(r.stderr) == "warning: skipped 1 of 3 images that could not be read: b.png"
    assert masks(out) == ["a_mask.png", "c_mask.png"]
    fault.seen(r.stderr, kept="masks of every readable image")


@pytest.mark.fault("--save_dir inside --image_path, run twice",
                   command="python deploy/python/infer.py --image_path DIR --save_dir DIR/out")
def test_infer_does_not_read_its_own_output_folder(fault, fp32_dir, tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "a.png")
    out = folder / "out"
    for _ in range(2):
        r = infer(fp32_dir, folder, out)
        assert r.returncode == 0, r.stderr[-2000:]
    assert masks(out) == ["a_mask.png"]  # not out/out/a_mask_mask.png
    assert "not read: 2 image files under the output folder" in r.stdout
    fault.seen(last_line(r.stdout), kept="one mask per input image")


# ---------------------------------------------------------------- INT8 of an FP32 export
@pytest.mark.fault("--precision int8 on an FP32 export",
                   command="python deploy/python/eval_deployed.py --precision int8")
def test_eval_deployed_refuses_int8_of_an_fp32_export(fault, fp32_dir):
    r = run("deploy/python/eval_deployed.py", "--config", DEMO, "--model_dir", str(fp32_dir),
            "--precision", "int8")
    assert r.returncode == 2, r.stdout[-2000:]
    line = last_line(r.stderr)
    assert line.startswith(f"error: --precision int8 needs a quantized export, but {fp32_dir} "
                           f"is FP32")
    assert "use --precision fp32" in line and "slim/qat_export.py" in line
    assert "mIoU" not in r.stdout
    fault.seen(r.stderr)


@pytest.mark.fault("--precision int8 on an FP32 export",
                   command="python deploy/python/infer.py --precision int8")
def test_infer_refuses_int8_of_an_fp32_export(fault, fp32_dir, tmp_path):
    image = write_image(tmp_path / "a.png")
    r = infer(fp32_dir, image, tmp_path / "out", "--precision", "int8")
    assert r.returncode == 2, r.stderr[-2000:]
    line = last_line(r.stderr)
    assert f"precision 'int8' needs a quantized export, but {fp32_dir} is FP32" in line
    assert "use precision 'fp32'" in line
    assert not (tmp_path / "out").exists()
    fault.seen(r.stderr)


@pytest.mark.fault("an export whose deploy.yaml is not valid YAML",
                   command="python deploy/python/eval_deployed.py --model_dir D")
def test_eval_deployed_names_a_broken_deploy_yaml(fault, fp32_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("model.pdmodel", "model.pdiparams"):
        (broken / name).write_bytes((fp32_dir / name).read_bytes())
    (broken / "deploy.yaml").write_text("Deploy: {model: model.pdmodel\n")  # unclosed
    r = run("deploy/python/eval_deployed.py", "--config", DEMO, "--model_dir", str(broken))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert last_line(r.stderr).startswith(f"error: {broken / 'deploy.yaml'}: not valid YAML")
    fault.seen(r.stderr)
