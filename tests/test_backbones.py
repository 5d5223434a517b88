"""Backbones: feature strides and channels, dilation settings, PaddleSeg-compatible parameter
names, gradients; and that a zoo config builds its model with the nested backbone."""
from pathlib import Path

import numpy as np
import paddle
import pytest

import segq.models  # noqa: F401  (registers models and backbones)
from segq.builders import build_model, num_classes_of
from segq.config import load_config
from segq.registry import BACKBONES, MODELS

REPO = Path(__file__).resolve().parents[1]


def n_params(layer):
    return sum(int(np.prod(p.shape)) for p in layer.parameters())


def features(backbone, hw=(64, 64)):
    backbone.eval()
    with paddle.no_grad():
        return backbone(paddle.randn([1, backbone.in_channels, *hw]))


@pytest.mark.parametrize("name, channels", [("ResNet18_vd", [64, 128, 256, 512]),
                                            ("ResNet50_vd", [256, 512, 1024, 2048])])
@pytest.mark.parametrize("output_stride, strides", [(8, [4, 8, 8, 8]), (16, [4, 8, 16, 16]),
                                                    (32, [4, 8, 16, 32])])
def test_resnet_vd_stage_strides_and_channels(name, channels, output_stride, strides):
    backbone = BACKBONES.build({"type": name, "output_stride": output_stride})
    assert backbone.feat_channels == channels
    feats = features(backbone)
    assert [f.shape[1] for f in feats] == channels
    assert [64 // f.shape[2] for f in feats] == strides


def test_resnet_vd_dilation_and_multi_grid():
    r50 = BACKBONES.build({"type": "ResNet50_vd", "output_stride": 8, "multi_grid": [1, 2, 4]})
    assert [r50.bb_2_0.conv1._conv._dilation[0], r50.bb_2_5.conv1._conv._dilation[0]] == [2, 2]
    assert [getattr(r50, f"bb_3_{i}").conv1._conv._dilation[0] for i in range(3)] == [4, 8, 16]
    assert r50.bb_2_0.conv1._conv._stride[0] == 1 and r50.bb_1_0.conv1._conv._stride[0] == 2
    # The vd shortcut: average pool then 1x1 conv where the stage strides, plain 1x1 otherwise.
    assert r50.bb_1_0.short.is_vd_mode and not r50.bb_2_0.short.is_vd_mode
    assert not r50.bb_0_0.short.is_vd_mode
    r18 = BACKBONES.build({"type": "ResNet18_vd", "output_stride": 16, "multi_grid": [1, 2]})
    assert [r18.bb_3_0.conv0._conv._dilation[0], r18.bb_3_1.conv0._conv._dilation[0]] == [2, 4]


@pytest.mark.parametrize("kwargs, message", [
    ({"output_stride": 4}, "output_stride must be one of"),
    ({"multi_grid": [1, 2]}, "one entry per block of the last stage"),
])
def test_resnet_vd_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BACKBONES.build({"type": "ResNet50_vd", **kwargs})


def test_parameter_names_match_paddleseg_checkpoints():
    """Spot checks of keys in PaddleSeg's ImageNet weights, so they load with strict=True."""
    r50 = set(BACKBONES.build({"type": "ResNet50_vd"}).state_dict())
    assert {"conv1_1._conv.weight", "conv1_3._batch_norm._variance", "bb_0_0.short._conv.weight",
            "bb_1_0.short._batch_norm._mean", "bb_3_2.conv2._conv.weight"} <= r50
    assert not any(k.endswith("_conv.bias") for k in r50)
    hr = set(BACKBONES.build({"type": "HRNet_W18"}).state_dict())
    assert {"conv_layer1_1._conv.weight", "la1.bb_layer2_1.conv_down._conv.weight",
            "tr1.transition_tr1_layer_2._conv.weight",
            "st2.stage_st2_1.branches_func.bb_st2_1_branch_layer_1_1.conv1._conv.weight",
            "st4.stage_st4_3.fuse_func.residual_st4_3_layer_1_4._batch_norm.weight",
            "st4.stage_st4_3.fuse_func.residual_st4_3_layer_4_1_3._conv.weight"} <= hr


def test_hrnet_w18_output_and_size():
    backbone = BACKBONES.build({"type": "HRNet_W18"})
    assert backbone.feat_channels == [270]
    assert 9.5e6 < n_params(backbone) < 9.7e6  # HRNet-W18 without the classification head
    (feat,) = features(backbone, (50, 70))  # 'same' padding: stride 4 -> ceil(50/4), ceil(70/4)
    assert list(feat.shape) == [1, 270, 13, 18]


def test_hrnet_rejects_inconsistent_stages():
    with pytest.raises(ValueError, match="stage3_num_blocks and stage3_num_channels need 3"):
        BACKBONES.build({"type": "HRNet", "stage3_num_blocks": [4, 4]})


def test_resnet50_vd_backward_reaches_every_parameter():
    paddle.seed(0)
    backbone = BACKBONES.build({"type": "ResNet50_vd", "output_stride": 16})
    backbone.train()
    feats = backbone(paddle.randn([2, 3, 64, 64]))
    paddle.add_n([f.mean() for f in feats]).backward()
    missing = [p.name for p in backbone.parameters() if not p.stop_gradient and p.grad is None]
    assert not missing


def test_zoo_config_builds_the_model_with_its_nested_backbone():
    cfg = load_config(
        REPO / "configs/deeplabv3p/deeplabv3p_resnet18_vd_os8_camvid_360x480_1200.yml")
    model = build_model(cfg.model, num_classes_of(cfg))
    assert type(model) is MODELS.get("DeepLabV3P")
    assert type(model.backbone) is BACKBONES.get("ResNet18_vd")
    assert model.backbone.output_stride == 8
    assert model.head.decoder.conv.weight.shape[0] == 11  # CamVid's classes


# ---------------------------------------------------------------- every registered backbone
# Strides of each backbone's outputs with its default arguments (ResNet-vd: output stride 8).
DEFAULT_STRIDES = {
    "HRNet": [4], "HRNet_W18": [4],
    "ResNet18_vd": [4, 8, 8, 8], "ResNet50_vd": [4, 8, 8, 8],
    "STDC1": [2, 4, 8, 16, 32], "STDC2": [2, 4, 8, 16, 32],
}


def test_stride_table_names_registered_backbones():
    assert set(DEFAULT_STRIDES) <= set(BACKBONES.names())


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_registered_backbone_returns_the_features_it_declares(name):
    if name not in DEFAULT_STRIDES:
        pytest.fail(f"add {name} to DEFAULT_STRIDES: the strides of its outputs")
    paddle.seed(0)
    backbone = BACKBONES.build({"type": name})
    assert backbone.in_channels == 3
    feats = features(backbone, (64, 96))
    assert [f.shape[1] for f in feats] == list(backbone.feat_channels)
    assert [[64 // s, 96 // s] for s in DEFAULT_STRIDES[name]] == [f.shape[2:] for f in feats]
    assert all(np.isfinite(f.numpy()).all() for f in feats)
