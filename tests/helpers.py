"""Plain helpers shared by several test modules (fixtures live in tests/conftest.py, test
models in tests/zoo.py). Import as ``from tests.helpers import ...``."""
from __future__ import annotations

import numpy as np

# The demo config, relative to the repository root (the tests run from there).
DEMO = "configs/demo/bisenetv2_synthetic_96x128_300.yml"


def cosine(a, b) -> float:
    """Cosine similarity of two arrays, flattened, in float64."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
