"""The repo's QAT configs select the layers they say they keep in float."""
from pathlib import Path

import paddle
import pytest

from segq.config import load_config
from segq.engine.workflows import build_model_for
from segq.quant.qat import quant_config_of
from segq.quant.select import select_skipped

REPO = Path(__file__).resolve().parents[1]
QUANT_CONFIGS = sorted((REPO / "configs/quant").glob("*.yml"))


@pytest.mark.parametrize("path", QUANT_CONFIGS, ids=lambda p: p.stem)
def test_skip_patterns_match_sublayers_of_the_model(path):
    cfg = load_config(path)
    select_skipped(build_model_for(cfg), quant_config_of(cfg).skip_layers)  # raises if not


def test_openvino_config_keeps_exactly_the_channel_multiplier_convs_in_float():
    cfg = load_config(REPO / "configs/quant/bisenetv2_camvid_360x480_qat600_openvino.yml")
    model = build_model_for(cfg)
    skipped = set(select_skipped(model, quant_config_of(cfg).skip_layers))
    convs = {name: layer for name, layer in model.named_sublayers()
             if isinstance(layer, paddle.nn.Conv2D)}
    multiplier = {name for name, conv in convs.items()
                  if conv._groups > 1 and conv._out_channels > conv._in_channels}
    assert multiplier and {name for name in convs if name in skipped} == multiplier
