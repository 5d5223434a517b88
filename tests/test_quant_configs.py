"""The repo's quantization configs select the layers they say they keep in float."""
from pathlib import Path

import paddle
import pytest

from segq.builders import build_model_for, quant_config_of
from segq.config import load_config
from segq.quant.select import select_skipped

REPO = Path(__file__).resolve().parents[1]
QUANT_CONFIGS = sorted((REPO / "configs/quant").glob("*.yml"))


# Convolutions each QAT config keeps in float. BiSeNetV2's semantic branch has 3 downsampling
# gather-and-expansion layers (one expansion each in branch_1.1) and 5 stride-1 ones (conv.1).
FLOAT_CONVS = {
    "bisenetv2_camvid_360x480_qat600": 0,
    "bisenetv2_camvid_360x480_qat600_openvino": 3 + 5,
    "deeplabv3p_resnet18_vd_os16_camvid_360x480_qat600": 0,
    "pp_liteseg_stdc1_camvid_360x480_qat600": 0,
}


@pytest.mark.parametrize("path", QUANT_CONFIGS, ids=lambda p: p.stem)
def test_skip_patterns_keep_the_stated_convs_in_float(path):
    if path.stem not in FLOAT_CONVS:
        pytest.fail(f"add {path.stem} to FLOAT_CONVS with the number of convs it keeps in float")
    cfg = load_config(path)
    model = build_model_for(cfg)
    skipped = select_skipped(model, quant_config_of(cfg).skip_layers)  # raises on a bad pattern
    convs = [name for name, layer in model.named_sublayers()
             if isinstance(layer, paddle.nn.Conv2D) and name in skipped]
    assert len(convs) == FLOAT_CONVS[path.stem], convs


def test_float_conv_table_names_existing_configs():
    assert set(FLOAT_CONVS) <= {p.stem for p in QUANT_CONFIGS}


def test_openvino_config_keeps_exactly_the_channel_multiplier_convs_in_float():
    cfg = load_config(REPO / "configs/quant/bisenetv2_camvid_360x480_qat600_openvino.yml")
    model = build_model_for(cfg)
    skipped = set(select_skipped(model, quant_config_of(cfg).skip_layers))
    convs = {name: layer for name, layer in model.named_sublayers()
             if isinstance(layer, paddle.nn.Conv2D)}
    multiplier = {name for name, conv in convs.items()
                  if conv._groups > 1 and conv._out_channels > conv._in_channels}
    assert multiplier and {name for name in convs if name in skipped} == multiplier
