"""QAT options: BatchNorm folding and distillation from the FP32 teacher."""
import numpy as np
import paddle
import pytest

from segq.config import DistillConfig
from segq.quant.distill import DistillationLoss, distill_term
from segq.quant.fold_bn import conv_bn_pairs, fold_conv_bn
from segq.registry import MODELS
from tests.zoo import build_test_model, trained_like


@pytest.mark.parametrize("name", MODELS.names())
def test_folding_removes_the_inference_path_batchnorms_and_keeps_the_output(name):
    model = trained_like(name, 5)
    x = paddle.randn([1, 3, 64, 96])
    with paddle.no_grad():
        before = model(x)[0].numpy()
    pairs = fold_conv_bn(model, paddle.randn([1, 3, 128, 128]))
    assert pairs
    folded = {bn for _, bn in pairs}
    layers = dict(model.named_sublayers())
    assert all(isinstance(layers[bn], paddle.nn.Identity) for bn in folded)
    # no conv -> BN pair is left on the inference path (BNs of training-only auxiliary
    # heads and BNs not fed by a conv, like BiSeNetV2's pooled context, remain)
    assert conv_bn_pairs(model, paddle.randn([1, 3, 128, 128])) == []
    with paddle.no_grad():
        after = model(x)[0].numpy()
    np.testing.assert_allclose(after, before, rtol=1e-3, atol=1e-3 * np.abs(before).max())


def test_folding_refuses_a_conv_whose_output_is_also_used_elsewhere():
    class Shared(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
            self.bn = paddle.nn.BatchNorm2D(4)

        def forward(self, x):
            y = self.conv(x)
            return [self.bn(y) + y]

    model = Shared()
    model.bn._mean.set_value(paddle.full([4], 0.7))
    with pytest.raises(RuntimeError, match="quant.fuse_conv_bn: false"):
        fold_conv_bn(model, paddle.randn([1, 3, 8, 8]))


@pytest.mark.parametrize("loss", ["kl", "mse"])
def test_distill_term_is_zero_only_for_equal_logits(loss):
    cfg = DistillConfig(loss=loss, temperature=2.0)
    a = paddle.randn([2, 5, 4, 6])
    assert float(distill_term(a, a, cfg)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_term(a, a + paddle.randn(a.shape), cfg)) > 1e-3
    with pytest.raises(ValueError, match="same network"):
        distill_term(a, a[:, :4], cfg)


def test_distillation_loss_adds_a_term_and_trains_only_the_student():
    student = build_test_model("BiSeNetV2", num_classes=5, seed=0)
    teacher = build_test_model("BiSeNetV2", num_classes=5, seed=1)
    student.train()

    def task_loss(logits, label, img):
        loss = paddle.nn.functional.cross_entropy(logits[0], label, axis=1)
        return loss, [float(loss)]

    loss_fn = DistillationLoss(task_loss, teacher, DistillConfig(weight=0.5))
    img = paddle.randn([2, 3, 64, 96])
    label = paddle.randint(0, 5, [2, 1, 64, 96])
    loss, terms = loss_fn(student(img), label, img)
    assert len(terms) == 2 and terms[1] > 0
    assert float(loss) == pytest.approx(sum(terms), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None for p in student.parameters())
    assert not teacher.training
