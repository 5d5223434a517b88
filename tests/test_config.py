import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from segq.config import ConfigError, apply_opts, deep_merge, dump_config, load_config
from segq.config.loader import load_yaml_with_bases

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_deep_merge_dicts_merge_lists_replace_and_delete():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert deep_merge(base, {"a": {"y": [3]}}) == {"a": {"x": 1, "y": [3]}, "b": 1}
    assert deep_merge(base, {"a": {"_delete_": True, "z": 0}}) == {"a": {"z": 0}, "b": 1}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}  # inputs untouched


def test_base_chain_relative_to_each_file(tmp_path):
    write(tmp_path / "base/root.yml", "a: 1\nnest: {x: 1, y: 2}\n")
    write(tmp_path / "base/mid.yml", "_base_: root.yml\nnest: {y: 3}\n")
    cfg = write(tmp_path / "cfg/top.yml", "_base_: [../base/mid.yml]\na: 5\n")
    assert load_yaml_with_bases(cfg) == {"a": 5, "nest": {"x": 1, "y": 3}}


def test_base_cycle_and_missing_file_are_named(tmp_path):
    write(tmp_path / "a.yml", "_base_: b.yml\n")
    write(tmp_path / "b.yml", "_base_: a.yml\n")
    with pytest.raises(ConfigError, match="_base_ cycle"):
        load_yaml_with_bases(tmp_path / "a.yml")
    write(tmp_path / "c.yml", "_base_: nope.yml\n")
    with pytest.raises(ConfigError, match="nope.yml"):
        load_yaml_with_bases(tmp_path / "c.yml")


def test_safe_loading_refuses_python_tags(tmp_path):
    cfg = write(tmp_path / "evil.yml", "a: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_with_bases(cfg)


def test_opts_dotted_keys_and_list_indices():
    cfg = {"a": {"b": 1}, "t": [{"s": 1}, {"s": 2}]}
    out = apply_opts(cfg, ["a.b=0.5", "t.1.s=[3, 4]", "new.key=true"])
    assert out == {"a": {"b": 0.5}, "t": [{"s": 1}, {"s": [3, 4]}], "new": {"key": True}}
    with pytest.raises(ConfigError, match="list index"):
        apply_opts(cfg, ["t.5.s=1"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_opts(cfg, ["novalue"])


DEMO = REPO / "configs/demo/bisenetv2_synthetic_96x128_300.yml"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_opts_read_every_python_float_spelling_as_that_float(x):
    # str(1e-05) == "1e-05", which YAML 1.1 (PyYAML) alone reads as a string
    for text in (repr(x), f"{x:e}", f"{x:E}"):
        value = apply_opts({}, [f"v={text}"])["v"]
        assert isinstance(value, float) and value == float(text), text


@pytest.mark.parametrize("text, expected", [
    ("1e-5", 1e-5), ("-2E3", -2000.0), (".5e-3", 5e-4), ("1.e2", 100.0), ("1_0e1", 100.0),
    ("10", 10), ("1_000", 1000), ("0x1f", 31), ("1e", "1e"), ("e5", "e5"), ("1e-5x", "1e-5x"),
    ("'1e-5'", "1e-5"), ("[1e-4, 2]", [1e-4, 2]),
])
def test_exponent_floats_without_a_dot_are_floats_and_nothing_else_changes(text, expected):
    value = apply_opts({}, [f"v={text}"])["v"]
    assert value == expected and type(value) is type(expected)


def test_a_file_learning_rate_in_exponent_form_is_a_float(tmp_path):
    child = write(tmp_path / "c.yml", f"_base_: {DEMO}\nlr_scheduler:\n  learning_rate: 1e-5\n")
    assert load_config(child).lr_scheduler.to_dict()["learning_rate"] == 1e-5


# every config a user can run: all YAML files under configs/ but the _base_ fragments
REPO_CONFIGS = [c for c in sorted((REPO / "configs").rglob("*.yml")) if "_base_" not in c.parts]


def config_id(path: Path) -> str:
    return path.relative_to(REPO / "configs").as_posix()


def test_repo_configs_come_from_every_config_folder():
    folders = {d.name for d in (REPO / "configs").iterdir() if d.is_dir()} - {"_base_"}
    assert {c.parent.name for c in REPO_CONFIGS} == folders


# the dataset a config's file name mentions -> its dataset type
NAMED_DATASETS = {"camvid": "CamVid", "cityscapes": "Cityscapes", "synthetic": "SyntheticScenes"}


@pytest.mark.parametrize("path", REPO_CONFIGS, ids=config_id)
def test_repo_config_validates_and_matches_its_name(path):
    """Loads and validates; and the file name (PaddleSeg's ``<model>_<dataset>_<size>_<iters>``,
    ``qat<iters>`` for QAT) tells the truth about the dataset and the iteration count."""
    cfg = load_config(path)
    named = [t for k, t in NAMED_DATASETS.items() if f"_{k}_" in path.stem]
    iters = re.search(r"_\d+x\d+_(?:qat)?(\d+)(?:_|$)", path.stem)
    assert len(named) == 1 and iters, (
        f"{path.name}: name it <model>_<dataset>_<h>x<w>_<iters>.yml, dataset one of "
        f"{sorted(NAMED_DATASETS)}")
    assert cfg.train_dataset.type == cfg.val_dataset.type == named[0]
    assert cfg.iters == int(iters.group(1))


@pytest.mark.parametrize("path", REPO_CONFIGS, ids=config_id)
def test_repo_config_builds_its_model_and_runs_it(path):
    """The model the config describes, with the config's class count (no weights, no data):
    one training-mode output per loss coefficient, and an eval forward of a small image."""
    import numpy as np
    import paddle

    from segq.builders import build_model, num_classes_of
    from segq.config.schema import Component

    cfg = load_config(path)
    num_classes = num_classes_of(cfg)
    spec = {k: v for k, v in cfg.model.to_dict().items() if k != "pretrained"}
    if isinstance(spec.get("backbone"), dict):
        spec["backbone"] = {k: v for k, v in spec["backbone"].items() if k != "pretrained"}
    paddle.seed(0)
    model = build_model(Component(**spec), num_classes)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal([2, 3, 64, 64]),
                         dtype="float32")
    with paddle.no_grad():
        model.train()
        train_out = model(x)
        model.eval()
        (out,) = model(x[:1])
    # builders.MultiOutputLoss refuses a model whose output count differs from loss.coef
    assert len(train_out) == len(cfg.loss.coef)
    assert list(out.shape) == [1, num_classes, 64, 64] and np.isfinite(out.numpy()).all()
    stride = re.search(r"_os(\d+)_", path.stem)  # e.g. resnet50_vd_os8: output stride 8
    if stride:
        assert model.backbone.output_stride == int(stride.group(1))


@pytest.mark.parametrize("opt, message", [
    ("itres=10", "itres: unknown key"),
    ("iters=abc", "iters: Input should be a valid integer"),
    ("batch_size=0", "batch_size: Input should be greater than 0"),
    ("model.type=BiSeNetV3", "model.type: unknown model type 'BiSeNetV3'.*did you mean BiSeNetV2"),
    ("model.lamda=0.5", "model: model BiSeNetV2 has no argument 'lamda'.*did you mean 'lambd'"),
    ("train_dataset.transforms.0.type=Flip", "train_dataset.transforms.0.type: unknown transform"),
    ("train_dataset.transforms.1.prob2=1", "train_dataset.transforms.1: .*no argument 'prob2'"),
    ("loss.coef=[]", "loss.coef: List should have at least 1 item"),
    ("loss.types.0.type=CELoss", "loss.types.0.type: unknown loss"),
    ("optimizer.momentun=0.8", "optimizer: .*no argument 'momentun'"),
    ("test_config.is_slide=true", "is_slide: true needs crop_size"),
    ("freeze_bn_stats=maybe", "freeze_bn_stats: Input should be a valid boolean"),
    ("lr_scheduler.learning_rate='1e-4'",
     "lr_scheduler: .*argument 'learning_rate' expects a number, got '1e-4' \\(str\\)"),
    ("lr_scheduler.warmup_iters=5.5", "argument 'warmup_iters' expects an integer, got 5.5"),
])
def test_validation_errors_name_file_and_key(opt, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(DEMO, [opt])
    assert str(DEMO) in str(info.value)


def test_loss_needs_matching_types_and_coef():
    with pytest.raises(ConfigError, match="loss.types has 2 entries but loss.coef has 5"):
        load_config(DEMO, ["loss.types=[{type: CrossEntropyLoss}, {type: DiceLoss}]"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(DEMO, ["iters=7", "lr_scheduler.learning_rate=0.2"])
    assert cfg.iters == 7 and cfg.lr_scheduler.kwargs()["learning_rate"] == 0.2
    dump_config(cfg, tmp_path / "config.yml")
    again = load_config(tmp_path / "config.yml")
    assert again == cfg
    assert "_base_" not in yaml.safe_load((tmp_path / "config.yml").read_text())


@pytest.mark.parametrize("path", REPO_CONFIGS, ids=config_id)
def test_repo_config_raises_no_recipe_warnings(path):
    from segq.config.validate import recipe_warnings

    assert recipe_warnings(load_config(path)) == []


@pytest.mark.parametrize("rates, crop, warned", [
    ("[1,6,12,18]", "[240,240]", [18]),      # 15x15 train maps at output stride 16
    ("[1,6,12,18]", "[320,240]", [18]),      # the shorter side counts
    ("[1,6,12,18]", "[320,320]", []),        # 20x20: every branch sees data
    ("[1,15,16]", "[240,240]", [15, 16]),
])
def test_atrous_rates_at_least_the_train_feature_map_are_warned(rates, crop, warned):
    from segq.config.validate import recipe_warnings

    cfg = load_config(REPO / "configs/deeplabv3p/deeplabv3p_resnet18_vd_os16_camvid_360x480_2400.yml",
                      [f"model.aspp_ratios={rates}", f"train_dataset.transforms.1.crop_size={crop}"])
    warnings = recipe_warnings(cfg)
    if not warned:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warnings[0].startswith(f"model.aspp_ratios: rate(s) {warned}")
