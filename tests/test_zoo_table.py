"""tools/model_zoo_table.py fills a zoo row's mIoU columns from the comparison run of the same
model section, and from no other."""
from segq.bench.zoo_table import measured_columns, zoo_configs


def comparison(model_config, quant_config=None):
    rows = [("dygraph", "fp32", 0.57, None), ("dygraph", "int8 (fake quant)", 0.568, None),
            ("Paddle Inference oneDNN", "fp32", 0.57, 54.0),
            ("Paddle Inference oneDNN", "int8", 0.567, 27.04)]
    return {"model_config": model_config, "quant_config": quant_config,
            "rows": [{"stage": s, "precision": p, "miou": m, "latency_ms": ms}
                     for s, p, m, ms in rows]}


def test_columns_come_from_the_run_of_the_same_model_section():
    bisenet = {"type": "BiSeNetV2"}
    lite = {"type": "PPLiteSeg", "backbone": {"type": "STDC1"}, "arm_out_chs": (32, 64, 128)}
    runs = [comparison(bisenet), comparison(
        {"type": "PPLiteSeg", "backbone": {"type": "STDC2"}, "arm_out_chs": [32, 64, 128]})]
    assert measured_columns(runs, bisenet) == {"fp32_miou": 0.57, "int8_miou": 0.567}
    assert measured_columns(runs, lite) == {}  # STDC1 was not measured
    runs.append(comparison({**lite, "arm_out_chs": [32, 64, 128]}))
    assert measured_columns(runs, lite)["int8_miou"] == 0.567  # tuples match lists


def test_a_qat_config_takes_only_the_run_of_its_own_quant_section():
    bisenet = {"type": "BiSeNetV2"}
    plain, skipping = {"skip_layers": []}, {"skip_layers": ["sb.*"]}
    runs = [comparison(bisenet, plain), {**comparison(bisenet), "quant_config": None}]
    assert measured_columns(runs, bisenet, skipping) == {}
    assert measured_columns(runs, bisenet, plain)["int8_miou"] == 0.567
    assert measured_columns(runs, bisenet)["int8_miou"] == 0.567  # the FP32 zoo row


def test_default_configs_are_the_fp32_camvid_zoo_and_patterns_are_taken_as_given():
    default = zoo_configs(None)
    assert "configs/bisenetv2/bisenetv2_camvid_360x480_2400.yml" in default
    assert not [c for c in default if "/quant/" in c or "cityscapes" in c]
    assert zoo_configs(["configs/quant/bisenetv2_*.yml"]) == [
        "configs/quant/bisenetv2_camvid_360x480_qat600.yml",
        "configs/quant/bisenetv2_camvid_360x480_qat600_openvino.yml"]
