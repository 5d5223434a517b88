import os; os.environ.setdefault("OMP_NUM_THREADS", "2")  # noqa: E401,E702  before paddle/cv2
from segq.cpu_runtime import set_cpu_defaults; set_cpu_defaults()  # noqa: E402,E702  MKL on AMD

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
