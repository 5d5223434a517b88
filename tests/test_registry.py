import pytest

from segq.registry import Registry, RegistryError


def make():
    reg = Registry("widget")

    @reg.register
    class Foo:
        def __init__(self, size, colour="red"):
            self.size, self.colour = size, colour

    return reg, Foo


def test_register_and_build_checks_kwargs():
    reg, Foo = make()
    obj = reg.build({"type": "Foo", "size": 3})
    assert isinstance(obj, Foo) and obj.size == 3 and obj.colour == "red"
    with pytest.raises(RegistryError, match="no argument 'colr'.*did you mean 'colour'"):
        reg.build({"type": "Foo", "size": 3, "colr": "blue"})
    with pytest.raises(RegistryError, match="needs argument 'size'"):
        reg.build({"type": "Foo"})


def test_defaults_fill_only_missing_accepted_args():
    reg, _ = make()
    assert reg.build({"type": "Foo"}, size=5, unrelated=1).size == 5
    assert reg.build({"type": "Foo", "size": 2}, size=5).size == 2


def test_duplicate_name_raises():
    reg, _ = make()
    with pytest.raises(RegistryError, match="already registered"):
        @reg.register
        class Foo:  # noqa: F811
            pass


def test_unknown_type_suggests_close_names():
    reg, _ = make()
    with pytest.raises(RegistryError, match="unknown widget type 'Fooo'.*did you mean Foo"):
        reg.get("Fooo")


def test_real_registries_are_populated():
    from segq import components  # noqa: F401
    from segq.registry import DATASETS, LOSSES, MODELS, TRANSFORMS

    assert "BiSeNetV2" in MODELS
    assert {"CamVid", "Cityscapes", "SyntheticScenes", "Dataset"} <= set(DATASETS)
    assert {"CrossEntropyLoss", "OhemCrossEntropyLoss", "DiceLoss", "MixedLoss"} <= set(LOSSES)
    assert {"Resize", "ResizeStepScaling", "RandomPaddingCrop", "RandomHorizontalFlip",
            "RandomDistort", "Normalize", "Padding"} <= set(TRANSFORMS)


# Each registry of segq.registry -> the test module with a test parametrized over all its
# names (so a new entry gets its case automatically), or the reason there is none.
PARAMETRIZED_IN = {"MODELS": "test_models.py", "BACKBONES": "test_backbones.py",
                   "LOSSES": "test_losses.py", "TRANSFORMS": "test_data.py",
                   "DATASETS": "test_data.py"}
NOT_PARAMETRIZED = {
    "OPTIMIZERS": "two thin wrappers of Paddle's optimizers, run by every training test",
    "LR_SCHEDULERS": "tests/test_lr_schedule.py tests the schedules by name",
}


def test_every_registry_has_a_test_parametrized_over_its_names():
    from pathlib import Path

    import segq.registry

    registries = {n for n, v in vars(segq.registry).items() if isinstance(v, Registry)}
    assert registries == set(PARAMETRIZED_IN) | set(NOT_PARAMETRIZED)
    for var, module in PARAMETRIZED_IN.items():
        text = (Path(__file__).parent / module).read_text(encoding="utf-8")
        assert f'@pytest.mark.parametrize("name", {var}.names())' in text, (var, module)
