"""Fake-quant insertion: the quant config validates at load, skipped layers stay float."""
import paddle
import pytest

from segq.config import ConfigError, load_config
from segq.config import QuantConfig
from segq.quant.paddleslim_adapter import prepare_qat
from tests.zoo import build_test_model

DEMO = "configs/demo/bisenetv2_synthetic_96x128_300.yml"


def conv_types(model):
    return {name: type(layer).__name__ for name, layer in model.named_sublayers()
            if type(layer).__name__ in ("Conv2D", "QuantizedConv2D")}


def test_skipped_layers_stay_float_and_the_rest_is_fake_quantized():
    model = build_test_model("BiSeNetV2", num_classes=4)
    qat = prepare_qat(model, QuantConfig(skip_layers=["head", "aux_head*"]))
    types = conv_types(qat.model)
    skipped = {n: t for n, t in types.items() if n.startswith(("head.", "aux_head"))}
    others = {n: t for n, t in types.items() if n not in skipped}
    assert skipped and set(skipped.values()) == {"Conv2D"}
    assert others and set(others.values()) == {"QuantizedConv2D"}
    assert "head.conv_1x1" in qat.skipped
    qat.model.train()
    out = qat.model(paddle.randn([2, 3, 64, 96]))
    assert len(out) == 5 and list(out[0].shape) == [2, 4, 64, 96]


def test_pattern_matching_nothing_is_an_error():
    model = build_test_model("BiSeNetV2", num_classes=4)
    with pytest.raises(ValueError, match="'haed.\\*' matches no sublayer.*did you mean"):
        prepare_qat(model, QuantConfig(skip_layers=["haed.*"]))


@pytest.mark.parametrize("opt, message", [
    ("quant.weight_quantize_type=range_abs_max",
     "quant.weight_quantize_type: Input should be 'abs_max' or 'channel_wise_abs_max'"),
    ("quant.activation_quantize_type=abs_max",
     "quant.activation_quantize_type: Input should be 'moving_average_abs_max'"),
    ("quant.weight_bits=16", "quant.weight_bits: Input should be less than or equal to 8"),
    ("quant.skip_layer=[head]", "quant.skip_layer: unknown key"),
])
def test_invalid_quant_settings_fail_at_load_with_the_allowed_values(opt, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DEMO, [opt])


def test_quant_section_loads():
    cfg = load_config(DEMO, ["quant.skip_layers=[head.*]", "quant.weight_bits=8"])
    assert cfg.quant.skip_layers == ["head.*"]
    assert cfg.quant.weight_quantize_type == "channel_wise_abs_max"
