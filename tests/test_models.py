"""Every registered model: output contract, gradients, and that it can learn a tiny batch."""
import numpy as np
import paddle
import pytest

import segq.losses  # noqa: F401  (registers losses)
import segq.models  # noqa: F401  (registers models)
from segq.models import layers
from segq.registry import LOSSES, MODELS
from tests.zoo import build_test_model

NUM_CLASSES = 4


# Outputs in training mode: the main head, then the auxiliary heads (with the zoo test
# kwargs, which keep every auxiliary head on). Eval mode returns the main head alone.
TRAIN_OUTPUTS = {
    "BiSeNetV2": 5,   # main + aux heads on semantic stages 2, 3, 4, 5
    "DANet": 4,       # main + channel-attention, position-attention, backbone-feature heads
    "DeepLabV3P": 1,
    "FCN": 1,
    "GCNet": 2,       # main + auxiliary FCN head
    "PPLiteSeg": 3,   # a head on each of the three decoder stages
    "PSPNet": 2,      # main + auxiliary head
    "UNet": 1,
}


def build(name, **kwargs):
    return build_test_model(name, NUM_CLASSES, **kwargs)  # seeded; small zoo test kwargs


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("hw", [(64, 96), (50, 70)])  # 50x70 is not a multiple of the stride
def test_output_list_and_shapes(name, hw):
    if name not in TRAIN_OUTPUTS:
        pytest.fail(f"add {name} to TRAIN_OUTPUTS: how many outputs it returns in training")
    model = build(name)
    x = paddle.randn([2, 3, *hw])
    model.train()
    train_out = model(x)
    model.eval()
    with paddle.no_grad():
        eval_out = model(x)
    assert isinstance(train_out, list) and len(train_out) == TRAIN_OUTPUTS[name]
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


# --- STDC, PP-LiteSeg, UNet, DANet, GCNet -----------------------------------------------------

def test_stdc_backbones_strides_channels_and_block_types():
    from segq.registry import BACKBONES
    x = paddle.randn([1, 3, 64, 96])
    for spec in ({"type": "STDC1"}, {"type": "STDC2"}, {"type": "STDC1", "block_type": "add"}):
        paddle.seed(0)
        net = BACKBONES.build(spec)
        net.eval()
        with paddle.no_grad():
            feats = net(x)
        assert [f.shape[1] for f in feats] == net.feat_channels == [32, 64, 256, 512, 1024]
        assert [f.shape[2:] for f in feats] == [[64 // s, 96 // s] for s in (2, 4, 8, 16, 32)]
    assert len(BACKBONES.build({"type": "STDC2"}).features) == 2 + 4 + 5 + 3
    with pytest.raises(ValueError, match="block_type"):
        BACKBONES.build({"type": "STDC1", "block_type": "sum"})


def test_ppliteseg_keeps_paddleseg_parameter_names():
    """Checkpoint compatibility: a sample of PaddleSeg's PP-LiteSeg-T state-dict keys."""
    keys = set(build("PPLiteSeg").state_dict())
    for key in ["backbone.features.0.conv.weight", "backbone.features.2.avd_layer.0.weight",
                "backbone.features.2.conv_list.3.bn._variance",
                "ppseg_head.cm.stages.2.1._conv.weight", "ppseg_head.cm.conv_out._batch_norm._mean",
                "ppseg_head.arm_list.0.conv_x._conv.weight", "ppseg_head.arm_list.2._scale",
                "ppseg_head.arm_list.1.conv_xy_atten.1._batch_norm.weight",
                "seg_heads.2.conv_out.weight"]:
        assert key in keys, key


@pytest.mark.parametrize("arm_type", ["UAFM", "UAFM_SpAtten_S"])
def test_ppliteseg_other_fusion_modules(arm_type):
    model = build("PPLiteSeg", arm_type=arm_type, resize_mode="nearest")
    model.train()
    outs = model(paddle.randn([2, 3, 64, 96]))
    assert [o.shape for o in outs] == [[2, NUM_CLASSES, 64, 96]] * 3
    with pytest.raises(ValueError, match="arm_type"):
        build("PPLiteSeg", arm_type="ARM_Add_Add")


def test_max_over_channels_matches_paddle_max_values_and_gradient():
    x = paddle.randn([2, 16, 5, 7])
    grads = []
    for fn in (lambda t: paddle.max(t, axis=1, keepdim=True), layers.max_over_channels):
        t = x.detach()
        t.stop_gradient = False
        y = fn(t)
        (y * paddle.arange(35, dtype="float32").reshape([1, 1, 5, 7])).sum().backward()
        grads.append((y.numpy(), t.grad.numpy()))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


def test_danet_channel_attention_equals_paddleseg_formulation():
    """segq's CAM uses softmax(-E); PaddleSeg's softmax(rowmax(E) - E) is the same function."""
    from segq.models.danet import CAM
    paddle.seed(0)
    cam = CAM(8)
    cam.gamma.set_value(paddle.to_tensor([0.7]))
    x = paddle.randn([2, 8, 5, 6])

    def paddleseg_cam(t):
        flat = t.reshape([0, 8, -1])
        energy = paddle.bmm(flat, flat.transpose([0, 2, 1]))
        sim = paddle.nn.functional.softmax(energy.max(axis=-1, keepdim=True) - energy, axis=-1)
        return cam.gamma * paddle.bmm(sim, flat).reshape(t.shape) + t

    results = []
    for fn in (cam, paddleseg_cam):
        t = x.detach()
        t.stop_gradient = False
        y = fn(t)
        (y * y).sum().backward()
        results.append((y.numpy(), t.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-4)


def test_unet_with_deconv_and_one_input_channel():
    model = build("UNet", use_deconv=True, in_channels=1)
    model.train()
    out = model(paddle.randn([1, 1, 64, 96]))
    assert len(out) == 1 and out[0].shape == [1, NUM_CLASSES, 64, 96]
    assert model.encode.double_conv[0]._conv.weight.shape[:2] == [64, 1]


def test_gcnet_without_auxiliary_head():
    model = build("GCNet", enable_auxiliary_loss=False)
    model.train()
    assert len(model(paddle.randn([1, 3, 64, 96]))) == 1
    assert not hasattr(model.head, "auxlayer")
