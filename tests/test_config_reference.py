"""docs/configs.md (segq/config/reference.py, tools/config_reference.py): the reference is what
the generator makes now, names every registered component, never makes up a meaning, and
its "your own dataset" config loads and reads a dataset laid out as it describes."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest

from segq import components  # noqa: F401  (fills the registries)
from segq.builders import build_model, num_classes_of
from segq.config import load_config
from segq.config.reference import (EXAMPLE_COMMANDS, EXAMPLE_CONFIG, KINDS, SCHEMA_SECTIONS,
                                   component_args, missing_meanings, parse_docstring,
                                   prose_meanings, render, render_component)
from segq.data.check import check_config
from segq.registry import DATASETS, Registry

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configs.md"
REGENERATE = "regenerate it: python tools/config_reference.py --out docs/configs.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return render()


def test_docs_configs_md_is_what_the_generator_makes_now(rendered):
    assert DOC.is_file(), f"docs/configs.md is missing; {REGENERATE}"
    assert DOC.read_text(encoding="utf-8") == rendered, \
        f"docs/configs.md is out of date (a component or schema key changed); {REGENERATE}"


def test_every_registered_component_and_schema_key_is_in_the_reference(rendered):
    text = DOC.read_text(encoding="utf-8")
    for registry, title in KINDS:
        assert f"\n## {title}\n" in text
        for name in registry.names():
            assert f"\n### {name}\n" in text, f"{registry.kind} {name} is not in docs/configs.md"
    for prefix, model in SCHEMA_SECTIONS:
        for key in model.model_fields:
            path = f"{prefix}.{key}" if prefix else key
            assert f"| `{path}` |" in text, f"config key {path} is not in docs/configs.md"


def test_every_registry_is_a_section_of_the_reference():
    from segq import registry
    registries = {id(v) for v in vars(registry).values() if isinstance(v, Registry)}
    assert registries == {id(r) for r, _ in KINDS}, "a registry is missing from reference.KINDS"


def test_injected_arguments_are_marked_and_others_keep_their_defaults(rendered):
    rows = {a.name: a for a in component_args(*_registry("optimizer"), "SGD")}
    assert rows["learning_rate"].default.startswith("set by segq")
    assert rows["parameters"].default.startswith("set by segq")
    assert rows["momentum"].default == "`0.9`"
    rows = {a.name: a for a in component_args(*_registry("lr_scheduler"), "PolynomialDecay")}
    assert rows["decay_steps"].default.startswith("set by segq")
    assert rows["learning_rate"].default == "required"
    rows = {a.name: a for a in component_args(*_registry("model"), "BiSeNetV2")}
    assert rows["num_classes"].default.startswith("set by segq")
    assert rows["num_classes"].meaning == "number of output classes."
    # a dataset's num_classes is the user's to set
    rows = {a.name: a for a in component_args(DATASETS, "Dataset")}
    assert rows["num_classes"].default == "required"


def _registry(kind):
    return [next(r for r, _ in KINDS if r.kind == kind)]


# ---------------------------------------------------------------- docstring parsing
def test_args_sections_with_several_names_and_a_template_variable():
    doc = parse_docstring('''Summary line
    that goes on.

    Args:
        a: first
            continued.
        b, c: shared text.
        sK_x, sK_y (K = 2, 3): stage K has K branches.

    Layout::

        root/
            file.txt
    ''')
    assert doc.summary == "Summary line that goes on."
    assert doc.args == {"a": "first continued.", "b": "shared text.", "c": "shared text.",
                        "s2_x": "stage 2 has 2 branches.", "s2_y": "stage 2 has 2 branches.",
                        "s3_x": "stage 3 has 3 branches.", "s3_y": "stage 3 has 3 branches."}
    assert doc.literals == [("Layout", "root/\n    file.txt")]


def test_prose_clauses_that_lead_with_an_argument_or_name_it():
    paragraphs = parse_docstring(
        "Crop ``size`` (w, h); with ``ratio < 1``, redraw. ``a``/``b`` are paths, "
        "e.g. ``x.txt``. ``a`` is read before ``other`` is checked.").paragraphs
    found = prose_meanings(paragraphs, ["size", "ratio", "a", "b", "other"])
    assert found["size"] == ("Crop ``size`` (w, h)", "names")
    assert found["ratio"] == ("with ``ratio < 1``, redraw.", "names")
    assert found["a"] == ("``a``/``b`` are paths, e.g. ``x.txt``.", "leads")
    assert found["b"][1] == "leads"
    # a clause that opens with another argument is about that one
    assert "other" not in found
    assert prose_meanings(paragraphs, ["size"], mentions=False) == {}


class _Undocumented:
    """Does things with ``alpha``; see nothing."""

    def __init__(self, alpha: int = 1, beta: "float | None" = None, gamma=(1, 2)):
        pass


def test_an_undocumented_argument_gets_an_empty_meaning_never_a_made_up_one():
    reg = Registry("transform")
    reg.register(_Undocumented)
    args = {a.name: a for a in component_args(reg, "_Undocumented")}
    assert args["alpha"].meaning == "Does things with `alpha`"
    assert (args["beta"].meaning, args["beta"].source) == ("", "")
    assert args["beta"].type == "`float \\| None`" and args["beta"].default == "`null`"
    assert (args["gamma"].type, args["gamma"].default) == ("", "`[1, 2]`")
    text = render_component(reg, "_Undocumented")
    assert "| `beta` | `float \\| None` | `null` |  |" in text


def test_missing_meanings_lists_only_user_set_arguments():
    missing = missing_meanings()
    assert "learning_rate" not in missing.get("optimizer SGD", [])  # set by segq
    assert "num_classes" in missing["dataset Dataset"]
    assert not any(k.startswith("model ") for k in missing)  # every model argument is documented


def test_the_cli_writes_what_render_makes(tmp_path, rendered):
    spec = importlib.util.spec_from_file_location("config_reference",
                                                  REPO / "tools" / "config_reference.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "sub" / "configs.md"
    tool.main(["--out", str(out)])
    assert out.read_text(encoding="utf-8") == rendered


# ---------------------------------------------------------------- the worked example
def _fake_dataset(root: Path, size_wh=(64, 48), n=4) -> None:
    """The layout the reference describes: images/*.jpg, labels/*.png (ids 0-2, 255),
    train.txt and val.txt."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    names = [f"{i:04d}" for i in range(1, n + 1)]
    w, h = size_wh
    for name in names:
        assert cv2.imwrite(str(root / "images" / f"{name}.jpg"),
                           rng.integers(0, 256, (h, w, 3)).astype(np.uint8))
        label = rng.integers(0, 3, (h, w)).astype(np.uint8)
        label[0, :5] = 255
        assert cv2.imwrite(str(root / "labels" / f"{name}.png"), label)
    line = "images/{0}.jpg labels/{0}.png\n"
    (root / "train.txt").write_text("".join(line.format(x) for x in names[:-1]))
    (root / "val.txt").write_text(line.format(names[-1]))


@pytest.fixture
def example_dir(tmp_path, monkeypatch) -> Path:
    """my.yml (the reference's example) beside configs/ and data/my_dataset, as cwd."""
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    (tmp_path / "my.yml").write_text(EXAMPLE_CONFIG, encoding="utf-8")
    _fake_dataset(tmp_path / "data" / "my_dataset")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_example_config_loads_and_reads_the_dataset_it_describes(example_dir):
    cfg = load_config("my.yml")
    assert (cfg.train_dataset.type, cfg.val_dataset.type) == ("Dataset", "Dataset")
    assert set(cfg.train_dataset.kwargs()) >= {"dataset_root", "train_path", "num_classes"}
    assert "_delete_" not in cfg.train_dataset.kwargs()
    assert (cfg.model.type, cfg.optimizer.type, cfg.lr_scheduler.type) == \
        ("BiSeNetV2", "SGD", "PolynomialDecay")
    assert num_classes_of(cfg) == 3
    assert cfg.loss.types[0].kwargs() == {}  # CamVid's 11 class weights are gone

    train = DATASETS.build(cfg.train_dataset.to_dict())
    sample = train[0]
    assert sample["img"].shape == (3, 384, 512)  # crop_size [512, 384] is (width, height)
    assert set(np.unique(sample["label"])) <= {0, 1, 2, 255}
    val = DATASETS.build(cfg.val_dataset.to_dict())
    assert val[0]["img"].shape == (3, 48, 64)  # full frames
    assert all(r.ok for r in check_config(cfg, "all", 0, progress=False))

    # one loss coefficient per output the model returns in training, as the comment says
    model = build_model(cfg.model, num_classes_of(cfg))
    model.train()
    outputs = model(paddle.rand([1, 3, 64, 64]))
    assert len(outputs) == len(cfg.loss.coef) == 5


def test_the_example_check_command_passes_on_that_dataset(example_dir):
    check = EXAMPLE_COMMANDS.splitlines()[0].split()
    assert check[:2] == ["python", "tools/check_dataset.py"]
    r = subprocess.run([sys.executable, str(REPO / check[1]), *check[2:], "--num_workers", "0"],
                       cwd=example_dir, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "train: 3 samples" in r.stdout and "no problems" in r.stdout
    train_cmd = EXAMPLE_COMMANDS.splitlines()[1].split()
    assert (REPO / train_cmd[1]).is_file() and train_cmd[2:4] == ["--config", "my.yml"]
