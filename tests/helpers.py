"""Plain helpers shared by several test modules (fixtures live in tests/conftest.py, test
models in tests/zoo.py). Import as ``from tests.helpers import ...``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The demo config (BiSeNetV2 on the built-in SyntheticScenes), as an absolute path.
DEMO = str(REPO / "configs/demo/bisenetv2_synthetic_96x128_300.yml")
# --opts that make the demo config small enough for a test run of a few iterations
SMALL = ["train_dataset.num_samples=16", "val_dataset.num_samples=4",
         "train_dataset.image_size=[48, 64]", "val_dataset.image_size=[48, 64]",
         "batch_size=4"]


def cosine(a, b) -> float:
    """Cosine similarity of two arrays, flattened, in float64."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def small_cfg(iters: int, extra=()):
    """The demo config at SMALL size for ``iters`` iterations, with ``extra`` overrides."""
    from segq.config import load_config

    return load_config(DEMO, [*SMALL, f"iters={iters}", *extra])


def tiny_config(name: str, num_outputs: int, **sections):
    """The demo config with zoo model ``name`` (its test settings) on 64x64 synthetic images
    and one loss per output; ``sections`` replace top-level sections (e.g. ``quant``)."""
    from segq.config import validate_config
    from segq.config.loader import load_yaml_with_bases

    from tests.zoo import model_spec

    data = load_yaml_with_bases(DEMO)
    data.update(iters=2, batch_size=2, model=model_spec(name),
                loss={"types": [{"type": "CrossEntropyLoss"}], "coef": [1.0] * num_outputs},
                **sections)
    for split, n in (("train_dataset", 4), ("val_dataset", 2)):
        data[split].update(num_samples=n, image_size=[64, 64])
    return validate_config(data, source=f"tiny {name} config")
