"""Every registered model: output contract, gradients, and that it can learn a tiny batch."""
import numpy as np
import paddle
import pytest

import segq.losses  # noqa: F401  (registers losses)
import segq.models  # noqa: F401  (registers models)
from segq.models import layers
from segq.registry import LOSSES, MODELS

NUM_CLASSES = 4


def build(name, **kwargs):
    paddle.seed(0)
    return MODELS.build({"type": name, **kwargs}, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("hw", [(64, 96), (50, 70)])  # 50x70 is not a multiple of the stride
def test_output_list_and_shapes(name, hw):
    model = build(name)
    x = paddle.randn([2, 3, *hw])
    model.train()
    train_out = model(x)
    model.eval()
    with paddle.no_grad():
        eval_out = model(x)
    assert isinstance(train_out, list) and len(train_out) >= 1
    assert isinstance(eval_out, list) and len(eval_out) == 1
    for out in train_out + eval_out:
        assert list(out.shape) == [2, NUM_CLASSES, *hw]
        assert out.dtype == paddle.float32


@pytest.mark.parametrize("name", MODELS.names())
def test_backward_reaches_every_trainable_parameter(name):
    model = build(name)
    model.train()
    x = paddle.randn([2, 3, 64, 96])
    label = paddle.randint(0, NUM_CLASSES, [2, 64, 96])
    ce = LOSSES.build({"type": "CrossEntropyLoss"})
    loss = paddle.add_n([ce(o, label) for o in model(x)])
    loss.backward()
    missing = [p.name for p in model.parameters()
               if not p.stop_gradient and (p.grad is None or not np.isfinite(p.grad.numpy()).all())]
    assert not missing, f"no or non-finite gradient for {missing}"


@pytest.mark.parametrize("name", MODELS.names())
def test_a_few_sgd_steps_lower_the_loss_on_a_fixed_batch(name):
    model = build(name)
    model.train()
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.normal(size=(2, 3, 64, 96)).astype("float32"))
    label_np = np.zeros((2, 64, 96), dtype="int64")
    label_np[:, :, 48:] = 1
    label_np[:, 32:, :] += 2  # four quadrants, one class each
    label = paddle.to_tensor(label_np)
    ce = LOSSES.build({"type": "CrossEntropyLoss"})
    opt = paddle.optimizer.Momentum(0.05, parameters=model.parameters(), momentum=0.9)
    losses = []
    for _ in range(8):
        loss = paddle.add_n([ce(o, label) for o in model(x)])
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses


def test_bisenetv2_width_and_input_channels():
    model = build("BiSeNetV2", lambd=0.5, in_channels=1)
    model.eval()
    with paddle.no_grad():
        out = model(paddle.randn([1, 1, 64, 64]))
    assert list(out[0].shape) == [1, NUM_CLASSES, 64, 64]
    assert model.sb.stem.conv._conv.weight.shape[:2] == [32, 1]


def test_models_use_layer_forms_for_export():
    """Sigmoids must be segq's legacy-exporter-safe layer, not nn.Sigmoid (fails to export)."""
    for name in MODELS.names():
        model = build(name)
        assert not [n for n, s in model.named_sublayers() if type(s) is paddle.nn.Sigmoid]


def test_sigmoid_layer_matches_paddle():
    x = paddle.randn([2, 3, 4, 5])
    np.testing.assert_allclose(layers.Sigmoid()(x).numpy(), paddle.nn.functional.sigmoid(x).numpy())


def test_fold_conv_bias_into_bn_keeps_eval_output():
    paddle.seed(0)
    with_bias = layers.ConvBNReLU(3, 8, 3, bias_attr=None)
    with_bias.train()
    for _ in range(3):  # non-trivial running statistics
        with_bias(paddle.randn([4, 3, 8, 8]) * 3 + 1)
    state = with_bias.state_dict()
    state["_conv.bias"] = paddle.randn([8])
    with_bias.set_state_dict(state)
    no_bias = layers.ConvBNReLU(3, 8, 3)
    folded = layers.fold_conv_bias_into_bn(state)
    assert "_conv.bias" not in folded
    missing, unexpected = no_bias.set_state_dict(folded)
    assert not missing and not unexpected
    with_bias.eval()
    no_bias.eval()
    x = paddle.randn([2, 3, 8, 8])
    np.testing.assert_allclose(no_bias(x).numpy(), with_bias(x).numpy(), rtol=1e-5, atol=1e-5)
