"""Build any registered model for tests, with small settings where the defaults are large.

``TEST_KWARGS[name]`` holds the model's test config (nested ``backbone`` dicts are built through
``BACKBONES``, as the builder does). Configs under configs/ keep the real architectures; these
only keep the parametrized model and export tests fast, while still running every code path
(dilated stages, multi-grid, separable atrous convs, auxiliary heads).
"""
from __future__ import annotations

import copy

import paddle

import segq.models  # noqa: F401  (registers models and backbones)
from segq.registry import BACKBONES, MODELS

TEST_KWARGS: dict[str, dict] = {
    # ResNet-18-vd at output stride 8 (stages 3-4 dilated), small ASPP with in-map dilations.
    "DeepLabV3P": {
        "backbone": {"type": "ResNet18_vd", "output_stride": 8},
        "aspp_ratios": [1, 2, 4],
        "aspp_out_channels": 32,
    },
    # ResNet-18-vd at output stride 16 with multi-grid, narrow PPM. Not ResNet-50: after
    # test_export's two BN-statistics passes its eval-mode logits reach ~400 and saturate the
    # softmax test (float rounding alone then exceeds its 1e-4 tolerance); ResNet-50-vd is
    # covered by tests/test_backbones.py and has no op ResNet-18-vd lacks.
    "PSPNet": {
        "backbone": {"type": "ResNet18_vd", "output_stride": 16, "multi_grid": [1, 2]},
        "pp_out_channels": 64,
    },
    # A one-module-per-stage, narrow HRNet (HRNet_W18 has the same structure, 4x the blocks).
    "FCN": {
        "backbone": {
            "type": "HRNet",
            "stage1_num_blocks": [1], "stage1_num_channels": [16],
            "stage2_num_modules": 1, "stage2_num_blocks": [1, 1],
            "stage2_num_channels": [8, 16],
            "stage3_num_modules": 1, "stage3_num_blocks": [1, 1, 1],
            "stage3_num_channels": [8, 16, 32],
            "stage4_num_modules": 1, "stage4_num_blocks": [1, 1, 1, 1],
            "stage4_num_channels": [8, 16, 32, 64],
        },
    },
    # PP-LiteSeg-T as PaddleSeg configures it (STDC1, narrower decoder); -B is STDC2 with the
    # constructor's default decoder widths.
    "PPLiteSeg": {"backbone": {"type": "STDC1"}, "arm_out_chs": [32, 64, 128],
                  "seg_head_inter_chs": [32, 64, 64]},
    # Attention heads on STDC1 instead of the (slower) ResNet50_vd of their configs; indices
    # (2, 4) read STDC1's stride-8 and stride-32 features (the defaults (2, 3) fit ResNet's
    # four outputs and would leave STDC1's last stage without gradients); GCNet narrowed.
    "DANet": {"backbone": {"type": "STDC1"}, "backbone_indices": [2, 4]},
    "GCNet": {"backbone": {"type": "STDC1"}, "backbone_indices": [2, 4], "gc_channels": 64},
}


def model_spec(name: str, **overrides) -> dict:
    """The model config ``build_test_model`` uses: ``TEST_KWARGS`` updated by ``overrides``."""
    return {"type": name, **copy.deepcopy(TEST_KWARGS.get(name, {})), **overrides}


def build_test_model(name: str, num_classes: int, seed: int | None = 0, **overrides):
    """Build model ``name`` with its test kwargs (seeded for reproducible weights)."""
    if seed is not None:
        paddle.seed(seed)
    spec = model_spec(name, **overrides)
    if isinstance(spec.get("backbone"), dict):
        spec["backbone"] = BACKBONES.build(spec["backbone"])
    return MODELS.build(spec, num_classes=num_classes)


def trained_like(name: str, num_classes: int, shape=(2, 3, 64, 96), passes: int = 2,
                 seed: int | None = 0):
    """``build_test_model`` with non-trivial BatchNorm statistics (``passes`` train-mode
    forwards of random batches), returned in eval mode."""
    model = build_test_model(name, num_classes, seed=seed)
    model.train()
    with paddle.no_grad():
        for _ in range(passes):
            model(paddle.randn(list(shape)) * 2.0 + 0.5)
    model.eval()
    return model


CALIBRATION_SHAPE = [2, 3, 64, 96]


def calibrated_qat(name: str, quant, num_classes: int = 5):
    """A zoo model as QAT sees one: BatchNorm statistics from a few float batches, then fake
    quant (``quant``: a ``segq.config.QuantConfig``) whose activation scales have seen a few
    more batches with BatchNorm frozen (so the scales and the statistics agree, as after
    fine-tuning a trained model), in eval mode."""
    from segq.quant.paddleslim_adapter import prepare_qat
    from segq.quant.qat import observe_activation_ranges

    qat = prepare_qat(trained_like(name, num_classes, CALIBRATION_SHAPE, passes=4), quant)
    observe_activation_ranges(qat, [paddle.randn(CALIBRATION_SHAPE) for _ in range(4)])
    return qat
