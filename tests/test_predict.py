"""Dygraph inference modes used by val.py: sliding window, multi-scale/flip, size restore."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from segq.config import TestConfig as EvalConfig  # "Test*" names would be collected by pytest
from segq.data.trans_info import restore_original_size
from segq.engine.predict import infer_logits, slide_inference


class PixelModel(paddle.nn.Layer):
    """A 1x1 conv: every pixel's logits depend on that pixel only, so windows and flips
    must not change the result."""

    def __init__(self):
        super().__init__()
        paddle.seed(0)
        self.conv = paddle.nn.Conv2D(3, 5, 1)

    def forward(self, x):
        return [self.conv(x)]


@pytest.fixture
def model_and_input():
    model = PixelModel()
    model.eval()
    return model, paddle.randn([1, 3, 37, 53])


def test_slide_inference_matches_whole_image_for_a_pointwise_model(model_and_input):
    model, x = model_and_input
    whole = model(x)[0]
    for crop, stride in [((16, 16), (8, 8)), ((53, 37), (53, 37)), ((20, 30), (15, 7))]:
        np.testing.assert_allclose(slide_inference(model, x, crop, stride).numpy(),
                                   whole.numpy(), rtol=1e-5, atol=1e-5)


def test_flip_aug_equals_softmax_of_plain_for_a_pointwise_model(model_and_input):
    model, x = model_and_input
    cfg = EvalConfig(aug_eval=True, flip_horizontal=True, flip_vertical=True)
    probs = infer_logits(model, x, cfg)
    np.testing.assert_allclose(probs.numpy(), 3 * F.softmax(model(x)[0], axis=1).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_multi_scale_keeps_output_size(model_and_input):
    model, x = model_and_input
    out = infer_logits(model, x, EvalConfig(aug_eval=True, scales=[0.5, 1.0, 1.5]))
    assert list(out.shape) == [1, 5, 37, 53]


def test_restore_undoes_resize_and_padding():
    logits = paddle.randn([1, 2, 64, 64])
    out = restore_original_size(logits, [("resize", (30, 40)), ("padding", (60, 50))])
    # innermost first: crop the padding back to 60x50, then resize to 30x40
    assert list(out.shape) == [1, 2, 30, 40]
    with pytest.raises(ValueError, match="unknown trans_info op 'rotate'"):
        restore_original_size(logits, [("rotate", (1, 1))])
