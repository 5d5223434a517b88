"""The config reference (docs/configs.md), generated from the config schema and the registries.

``python tools/config_reference.py [--out docs/configs.md]`` writes it; a test fails when the
file differs from what :func:`render` produces, so a new or changed component (or schema key)
shows up in the diff of the commit that makes it.

What is generated:

- the top-level keys and the nested sections of :class:`~segq.config.schema.SegConfig` and
  :class:`~segq.config.quant.QuantConfig`: type (with pydantic's constraints), default, and
  the field's description, else the source comment above or beside the field;
- every registered component: its description (the docstring's prose), its literal
  blocks (a dataset's ``Layout::``), and a table of its constructor arguments with the type
  annotation, the default, and the meaning parsed from its docstring (or a base class's):
  an ``Args:`` entry, else a sentence clause that starts with the argument as inline code
  ("``name`` is ..."), else, in the component's own docstring, a clause that names it and
  does not start with inline code. An argument documented nowhere gets an empty cell:
  meanings are never made up here (``--missing`` lists those arguments).

What is written by hand (the constants below): the size conventions, the ``_base_`` rules
(from :mod:`segq.config.loader`), the "your own dataset" walk-through, whose config a test
loads against a small fake dataset, and one paragraph per component kind.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from typing import Any, Callable

import yaml
from pydantic import BaseModel

from ..registry import (BACKBONES, DATASETS, LOSSES, LR_SCHEDULERS, MODELS, OPTIMIZERS,
                        TRANSFORMS, Registry)
from .quant import DistillConfig, QuantConfig
from .schema import Component, ExportConfig, LossConfig, SegConfig, TestConfig
from .validate import INJECTED, NESTED

COMMAND = "python tools/config_reference.py --out docs/configs.md"

# ---------------------------------------------------------------- hand-written text
SIZES = """\
## Sizes: (width, height) in configs, N C H W for tensors

- Transform sizes are **(width, height)**, as in PaddleSeg: `Resize.target_size`,
  `RandomPaddingCrop.crop_size` and `Padding.target_size`. `crop_size: [512, 384]` cuts
  crops 512 pixels wide and 384 high; a single number means a square.
- `test_config.crop_size` and `test_config.stride` (sliding-window evaluation) are
  (width, height) too, and so are the `--crop_size W H` and `--stride W H` flags of the
  evaluation scripts.
- `--input_shape` (export.py, slim/qat_export.py, slim/ptq.py, tools/compare_int8.py, ...) and
  the shapes an export records (`input_shape` in `deploy.yaml`) are **N C H W**: batch,
  channels, height, width. CamVid's 480-wide, 360-high frames are `--input_shape 1 3 360 480`;
  `-1` leaves N, H or W dynamic.
- Model inputs and outputs are N C H W as well: logits are `[N, num_classes, H, W]`.
- Messages about image files give sizes as `W x H` ("64x48 (w x h)").
- One exception: `SyntheticScenes.image_size` is (height, width).
"""

INHERITANCE = """\
## `_base_`: building a config from others

(segq/config/loader.py; PaddleSeg's rules, made explicit.)

- `_base_` is a path or a list of paths, **relative to the file that names it**. The bases
  are merged in order (a later base wins over an earlier one), then the file itself on top.
  A base may have its own `_base_`.
- Mappings are merged key by key, recursively; **lists and scalars are replaced whole**: a
  `transforms` list or a `loss.types` list in your file replaces the inherited one entirely,
  it is never appended to.
- A mapping holding `_delete_: true` **replaces** the inherited mapping instead of being
  merged into it. Use it when you change a component's `type`: merging
  `{type: Dataset, ...}` into an inherited `{type: CamVid, ...}` would keep CamVid's other
  keys, which the new type may not accept.
- `--opts key.path=value` (on every script that takes `--config`) is applied after the merge; values are read as
  YAML (`--opts iters=2000 train_dataset.transforms.1.crop_size=[512,512]`; list items by
  index).
- Configs are read with `yaml.safe_load` rules (nothing is executed), except that `1e-5`
  is a float (YAML 1.1 would read it as the string "1e-5").
- After merging, the whole config is validated before anything runs: unknown keys, wrong
  types, unknown component types, arguments a component does not take, and class counts or
  class-weight lists that disagree between the model, the datasets and the losses are
  errors naming the key.
- The merged, validated config of a run is written to its `--save_dir`, so what ran is
  always on record.
"""

EXAMPLE_LAYOUT = """\
data/my_dataset/
    images/0001.jpg  images/0002.jpg  ...
    labels/0001.png  labels/0002.png  ...   one-channel PNG, pixel value = class id
                                            (0, 1, 2 here), 255 = ignored
    train.txt
    val.txt
"""

EXAMPLE_LIST = """\
images/0001.jpg labels/0001.png
images/0002.jpg labels/0002.png
"""

# The test (tests/test_config_reference.py) writes this beside a link to configs/ and a small
# fake data/my_dataset, loads it with segq.config.load_config and reads both splits.
EXAMPLE_CONFIG = """\
# my.yml: BiSeNetV2 on a 3-class dataset of your own
_base_:
  - configs/bisenetv2/bisenetv2_camvid_360x480_2400.yml  # the model, its 5 outputs, iters
  - configs/_base_/schedules/sgd_poly.yml   # SGD + poly decay (listed last: it wins)

batch_size: 4
iters: 4000

train_dataset:
  _delete_: true            # replace the inherited CamVid section, do not merge into it
  type: Dataset
  dataset_root: data/my_dataset
  train_path: train.txt     # relative to dataset_root
  num_classes: 3
  ignore_index: 255
  mode: train
  transforms:
    - type: ResizeStepScaling
      min_scale_factor: 0.5
      max_scale_factor: 2.0
      scale_step_size: 0.25
    - type: RandomPaddingCrop
      crop_size: [512, 384]   # (width, height)
    - type: RandomHorizontalFlip
    - type: RandomDistort
    - type: Normalize

val_dataset:
  _delete_: true
  type: Dataset
  dataset_root: data/my_dataset
  val_path: val.txt
  num_classes: 3
  ignore_index: 255
  mode: val
  transforms:
    - type: Normalize        # full frames; or a Resize with target_size [w, h]

# The model config's loss carries CamVid's 11 class weights: replace it (lists are
# replaced whole). One coefficient per model output: BiSeNetV2's main head and 4 aux heads.
loss:
  types:
    - type: CrossEntropyLoss
  coef: [1, 1, 1, 1, 1]
"""

EXAMPLE_COMMANDS = """\
python tools/check_dataset.py --config my.yml
python train.py --config my.yml --do_eval --save_dir output/my_run
"""

EXAMPLE = f"""\
## Your own dataset

Put the images, the label images and two list files in one folder:

```
{EXAMPLE_LAYOUT}```

Each line of a list file is an image path and its label path, separated by a space,
relative to `dataset_root` (absolute paths work too); `train.txt`:

```
{EXAMPLE_LIST}```

Labels hold class ids `0 .. num_classes-1` and `ignore_index` (255) for pixels that count
for nothing. Labels that use other ids (a void class 11, say) can be mapped with
`label_remap: {{11: 255}}` (see [Dataset](#dataset)).

Then write a config, here `my.yml` beside `configs/`, that takes the model and the schedule
from existing configs and sets the data:

```yaml
{EXAMPLE_CONFIG}```

Check every listed file once (missing or unreadable files, image/label size mismatches,
label values outside the classes, class pixel shares, images smaller than the crop), then
train, evaluating at every save interval:

```
{EXAMPLE_COMMANDS}```

To start from other weights, set `model.pretrained` or `model.backbone.pretrained` (a
`.pdparams` file or an https URL); a model config for another network works the same way,
with its own number of `loss.coef` entries: one per output the model returns in training,
as each model's description below says.
"""

SCHEMA_INTRO = """\
## Top-level keys

A config is a YAML mapping with these keys (and `_base_`, see above). Component sections
(`model`, `optimizer`, `lr_scheduler`, the datasets, losses and transforms) are
`{type: Name, argument: value, ...}`: `type` names a registered component listed below,
the other keys are its constructor's arguments.
"""

KIND_TEXT = {
    "model": """\
`model: {type: Name, ...}`. `num_classes` is set from the dataset (the datasets' `num_classes`,
or the class count a dataset type fixes); if you set it, it must agree. `backbone` is a
backbone section. Besides the arguments below a model (and a backbone) takes `pretrained`:
a `.pdparams` file or an https URL (PaddleSeg's `.tar.gz` archives too, downloaded once into
`~/.cache/segq`, optionally pinned with `#sha256=<hex>`), loaded strictly after the model is
built.
""",
    "backbone": """\
`model.backbone: {type: Name, ...}`, for the models that take one. `pretrained` (a
`.pdparams` file or an https URL) loads ImageNet weights into the backbone alone.
""",
    "loss": """\
`loss.types: [{type: Name, ...}, ...]` with `loss.coef`: one coefficient per model output
(main head first); a single type is used for every output.
""",
    "dataset": """\
`train_dataset` and `val_dataset`. `mode` picks the split (`train`, `val`, `test`).
`transforms` is a list of transform sections, applied in order.
""",
    "transform": """\
Items of a dataset's `transforms` list (and of `export.transforms`). Sizes are (width,
height). In a dataset, `label_padding_value` and `ignore_index` default to the dataset's
`ignore_index`, so padded label pixels are ignored.
""",
    "optimizer": """\
`optimizer: {type: Name, ...}` (its default is in [Top-level keys](#top-level-keys)).
`parameters` and `learning_rate` are set by segq: the model's parameters and the
learning-rate schedule.
""",
    "lr_scheduler": """\
`lr_scheduler: {type: Name, ...}`. `decay_steps` is set by segq to the run's `iters`.
""",
}

# What a builder sets an INJECTED argument to (segq/builders.py)
INJECTED_VALUE = {
    ("model", "num_classes"): "the dataset's class count",
    ("optimizer", "parameters"): "the model's parameters",
    ("optimizer", "learning_rate"): "the `lr_scheduler`",
    ("lr_scheduler", "decay_steps"): "`iters`",
}
# Arguments a dataset fills in its transforms when they are not set (SegDataset.__init__)
DATASET_FILLED = {"label_padding_value", "ignore_index"}

KINDS: list[tuple[Registry, str]] = [
    (MODELS, "Models"), (BACKBONES, "Backbones"), (LOSSES, "Losses"), (DATASETS, "Datasets"),
    (TRANSFORMS, "Transforms"), (OPTIMIZERS, "Optimizers"), (LR_SCHEDULERS, "LR schedulers"),
]

# The registry every Component field of the schema is built from (segq/config/validate.py)
SCHEMA_COMPONENTS: dict[str, Registry] = {
    "model": MODELS, "optimizer": OPTIMIZERS, "lr_scheduler": LR_SCHEDULERS,
    "train_dataset": DATASETS, "val_dataset": DATASETS, "loss.types": LOSSES,
    "export.transforms": TRANSFORMS,
}
SCHEMA_SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("", SegConfig), ("loss", LossConfig), ("test_config", TestConfig),
    ("export", ExportConfig), ("quant", QuantConfig), ("quant.distill", DistillConfig),
]


# ---------------------------------------------------------------- docstring parsing
ARGS_HEADERS = ("Args:", "Arguments:", "Parameters:", "Keyword Args:", "Keyword Arguments:")
_ENTRY = re.compile(r"^(?P<names>[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_]\w*)*)"
                    r"(?:\s*\((?P<var>[A-Z])\s*=\s*(?P<vals>[^)]*)\))?"
                    r"(?:\s*\([^)]*\))?\s*:\s*(?P<text>.*)$")
_CODE = re.compile(r"``([^`]+)``")


@dataclasses.dataclass
class Docstring:
    summary: str = ""
    paragraphs: list[str] = dataclasses.field(default_factory=list)  # prose, one line each
    args: dict[str, str] = dataclasses.field(default_factory=dict)
    literals: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (title, block)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(lines: list[str]) -> str:
    return " ".join(s.strip() for s in lines if s.strip())


def parse_docstring(doc: str | None) -> Docstring:
    """Prose paragraphs, ``Args:`` entries (``a, b: text`` and ``xK (K = 2, 3): text``
    expand to every name) and ``Title::`` literal blocks of a docstring."""
    out = Docstring()
    if not doc:
        return out
    lines = inspect.cleandoc(doc).splitlines()
    i, para = 0, []

    def flush():
        if para:
            out.paragraphs.append(_join(para))
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush()
            i += 1
        elif stripped in ARGS_HEADERS:
            flush()
            base = _indent(line)
            i += 1
            entry: list[str] = []
            entry_indent = None

            def add(entry_lines):
                m = _ENTRY.match(_join(entry_lines))
                if not m:
                    return
                text, var = m["text"].strip(), m["var"]
                for n in (n.strip() for n in m["names"].split(",")):
                    if var and var in n:  # stageK_num_modules (K = 2, 3, 4): ... stage K ...
                        for v in (v.strip() for v in m["vals"].split(",")):
                            out.args.setdefault(n.replace(var, v),
                                                re.sub(rf"\b{var}\b", v, text))
                    else:
                        out.args.setdefault(n, text)

            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > base:
                ind = _indent(lines[i])
                if entry_indent is None:
                    entry_indent = ind
                if ind == entry_indent and entry:
                    add(entry)
                    entry = []
                entry.append(lines[i])
                i += 1
            if entry:
                add(entry)
        elif stripped.endswith("::"):
            # "Layout::" titles its block; "some prose::" ends a paragraph with a colon
            title = stripped[:-2].strip()
            if len(title.split()) > 3:
                para.append(title + ":")
                title = ""
            flush()
            base = _indent(line)
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                block.append(lines[i])
                i += 1
            out.literals.append((title, textwrap.dedent("\n".join(block)).strip("\n")))
        else:
            para.append(line)
            i += 1
    flush()
    if out.paragraphs:
        out.summary = out.paragraphs[0]
    return out


_ABBREV = ("e.g.", "i.e.", "etc.", "cf.", "vs.")


def clauses(paragraph: str) -> list[str]:
    """A paragraph split into sentences, then at semicolons (outside parentheses)."""
    text = paragraph
    for a in _ABBREV:
        text = text.replace(a, a.replace(".", "\0"))
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text):
        depth, start = 0, 0
        for j, ch in enumerate(sentence):
            depth += ch == "("
            depth -= ch == ")"
            if ch == ";" and depth == 0:
                out.append(sentence[start:j])
                start = j + 1
        out.append(sentence[start:])
    return [c.replace("\0", ".").strip() for c in out if c.strip()]


def _code_names(text: str) -> list[str]:
    """The identifiers that the double-backquoted spans of ``text`` start with (a span
    ``a: true`` gives ``a``; ``f(x)`` and ``a.b`` give nothing)."""
    names = []
    for code in _CODE.findall(text):
        m = re.match(r"[A-Za-z_]\w*(?![\w.(\[])", code.strip())
        if m:
            names.append(m.group())
    return names


def _leading_names(clause: str) -> list[str]:
    """Names of the inline-code spans a clause opens with ("``a``/``b`` are ...")."""
    m = re.match(r"^\(?((?:``[^`]+``\s*(?:/|,|and|or)?\s*)+)", clause)
    return _code_names(m.group(1)) if m else []


def prose_meanings(paragraphs: list[str], arg_names: list[str],
                   mentions: bool = True) -> dict[str, tuple[str, str]]:
    """``name -> (clause, how)`` from prose: ``how`` is ``"leads"`` for a clause that starts
    with the name as inline code; with ``mentions``, ``"names"`` for the first clause that
    names it and does not start with inline code (a clause opening with another name is
    about that one)."""
    found: dict[str, tuple[str, str]] = {}
    all_clauses = [c for p in paragraphs for c in clauses(p)]
    for clause in all_clauses:
        for name in _leading_names(clause):
            if name in arg_names and name not in found:
                found[name] = (clause, "leads")
    for clause in all_clauses if mentions else []:
        if re.match(r"^\(?``", clause):
            continue
        for name in _code_names(clause):
            if name in arg_names and name not in found:
                found[name] = (clause, "names")
    return found


def component_docs(target: Callable[..., Any]) -> list[tuple[Docstring, bool]]:
    """``(docstring, own)``: those of ``target`` and its ``__init__`` (own), then those of
    its segq base classes."""
    if not inspect.isclass(target):
        return [(parse_docstring(target.__doc__), True)]
    docs = []
    for owner in inspect.getmro(target):
        if owner is not target and not owner.__module__.startswith("segq"):
            continue  # paddle's nn.Layer documents its own arguments, not the component's
        own = owner is target
        docs.append((parse_docstring(owner.__dict__.get("__doc__")), own))
        init = owner.__dict__.get("__init__")
        if init is not None and init.__doc__:
            docs.append((parse_docstring(init.__doc__), own))
    return docs


# ---------------------------------------------------------------- formatting
def yaml_value(value: Any) -> str:
    """``value`` as it would be written in a config (YAML flow style)."""
    if isinstance(value, BaseModel):
        value = value.to_dict() if isinstance(value, Component) else value.model_dump()

    def plain(v):
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    text = yaml.safe_dump(plain(value), default_flow_style=True, sort_keys=False,
                          width=10 ** 6).strip()
    return text.removesuffix("...").strip()


def md_code(text: str) -> str:
    text = str(text)
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}".replace("|", "\\|")


def md_text(text: str, cell: bool = True) -> str:
    """Docstring text as Markdown: ``x`` -> `x`, :role:`x` -> `x`; in a table ``cell``,
    pipes escaped."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    text = _CODE.sub(lambda m: "`" + m.group(1) + "`", text)
    return text.replace("|", "\\|") if cell else text


def _anchor(title: str) -> str:
    """GitHub's heading anchor."""
    a = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return a.replace(" ", "-")


def format_type(tp: Any) -> str:
    """A resolved (pydantic) annotation as Python-like text; ``Annotated`` constraints inline."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return "None"
    if origin is typing.Annotated:
        base, *meta = args
        cons = constraint_text(meta)
        return f"{format_type(base)} {cons}" if cons else format_type(base)
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(format_type(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(format_type(a) for a in args)}]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def constraint_text(metadata: list[Any]) -> str:
    parts = []
    for m in metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(m, attr, None) is not None:
                parts.append(f"{sym} {getattr(m, attr)}")
        if getattr(m, "min_length", None):
            parts.append(f"at least {m.min_length} item{'s' if m.min_length > 1 else ''}")
        if getattr(m, "max_length", None):
            parts.append(f"at most {m.max_length} items")
    return ", ".join(parts)


# ---------------------------------------------------------------- the schema
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """``field -> comment``: the comment lines right above a field's line, then the comment at
    the end of its line(s), from the class's source."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):
        return {}
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, whole line)
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            whole = not lines[row - 1][:tok.start[1]].strip()
            comments[row] = (tok.string.lstrip("#").strip(), whole)
    out = {}
    cls = ast.parse(source).body[0]
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        row = node.lineno - 1
        while row in comments and comments[row][1]:
            above.insert(0, comments[row][0])
            row -= 1
        beside = [comments[r][0] for r in range(node.lineno, node.end_lineno + 1)
                  if r in comments and not comments[r][1]]
        text = _join(above + beside)
        if text:
            out[node.target.id] = text
    return out


def _mentions(tp: Any, cls: type) -> bool:
    return tp is cls or any(_mentions(a, cls) for a in typing.get_args(tp))


def schema_rows(prefix: str, model: type[BaseModel]) -> list[list[str]]:
    comments = field_comments(model)
    sections = {m: p for p, m in SCHEMA_SECTIONS}
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        tp = field.annotation
        type_text = format_type(tp)
        cons = constraint_text(field.metadata)
        nested = next((m for m in sections if m is not model and _mentions(tp, m)), None)
        if path in SCHEMA_COMPONENTS:
            reg = SCHEMA_COMPONENTS[path]
            title = next(t for r, t in KINDS if r is reg)
            many = typing.get_origin(tp) is list or "list[" in type_text
            what = f"[{reg.kind}](#{_anchor(title)}) section"
            type_cell = f"list of {what}s" if many else what
            if "None" in type_text:
                type_cell += " or `null`"
        elif _mentions(tp, Component):
            raise ValueError(f"schema field {path} holds components but SCHEMA_COMPONENTS "
                             f"does not say from which registry")
        elif nested is not None:
            type_cell = f"mapping: [`{sections[nested]}:`](#{_anchor(sections[nested])})"
            if "None" in type_text:
                type_cell += " or `null`"
        else:
            type_cell = md_code(type_text)
        if cons:
            type_cell += f" ({cons})"
        if field.is_required():
            default = "required"
        else:
            value = field.get_default(call_default_factory=True)
            if isinstance(value, BaseModel) and not isinstance(value, Component):
                default = "its defaults"
            else:
                default = md_code(yaml_value(value))
        meaning = field.description or comments.get(name, "")
        rows.append([f"`{path}`", type_cell, default, md_text(meaning)])
    return rows


def render_schema() -> str:
    parts = [SCHEMA_INTRO]
    for prefix, model in SCHEMA_SECTIONS:
        if prefix:
            parts.append(f"### `{prefix}:`\n")
            doc = parse_docstring(model.__dict__.get("__doc__"))
            if doc.summary:
                parts.append(md_text(doc.summary, cell=False) + "\n")
        parts.append(table(["key", "type", "default", "meaning"], schema_rows(prefix, model)))
    return "\n".join(parts)


# ---------------------------------------------------------------- components
@dataclasses.dataclass
class Arg:
    name: str
    type: str
    default: str
    meaning: str
    source: str  # "args", "leads", "names" or "" (undocumented)
    injected: bool


def component_args(registry: Registry, name: str) -> list[Arg]:
    target = registry.get(name)
    params = [p for p in inspect.signature(target).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    names = [p.name for p in params]
    docs = component_docs(target)
    documented: dict[str, tuple[str, str]] = {}
    for doc, _ in docs:  # Args entries first, from the class, then from its bases
        for n, text in doc.args.items():
            if n in names and n not in documented:
                documented[n] = (text, "args")
    for doc, own in docs:  # a mere mention only counts in the component's own text
        for n, found in prose_meanings(doc.paragraphs, names, mentions=own).items():
            documented.setdefault(n, found)
    injected = INJECTED.get(registry.kind, set())
    args = []
    for p in params:
        ann = p.annotation
        if ann is p.empty:
            type_text = ""
        elif isinstance(ann, str):
            type_text = ann
        else:
            type_text = inspect.formatannotation(ann)
        if p.name in NESTED:
            reg = NESTED[p.name]
            title = next(t for r, t in KINDS if r is reg)
            link = f"[{reg.kind}](#{_anchor(title)})"
            many = isinstance(p.default, (tuple, list)) or re.search(r"Sequence|list", type_text)
            type_cell = f"list of {link} sections" if many else f"{link} section"
        else:
            type_cell = md_code(type_text) if type_text else ""
        is_injected = p.name in injected
        if is_injected:
            value = INJECTED_VALUE.get((registry.kind, p.name))
            default = "set by segq" + (f": {value}" if value else "")
        elif p.default is p.empty:
            default = "required"
        else:
            default = md_code(yaml_value(p.default))
            if registry is TRANSFORMS and p.name in DATASET_FILLED:
                default += "; in a dataset: its `ignore_index`"
        text, source = documented.get(p.name, ("", ""))
        args.append(Arg(p.name, type_cell, default, md_text(text), source, is_injected))
    return args


def render_component(registry: Registry, name: str) -> str:
    target = registry.get(name)
    own = component_docs(target)[0][0]
    parts = [f"### {name}\n"]
    for paragraph in own.paragraphs:  # the summary, then the rest of the description
        parts.append(md_text(paragraph, cell=False) + "\n")
    fixed = getattr(target, "NUM_CLASSES", None)
    if registry is DATASETS and fixed is not None and "num_classes" not in \
            inspect.signature(target).parameters:
        parts.append(f"Classes: {fixed}.\n")
    for title, block in own.literals:
        parts.append(f"{title}:\n\n```\n{block}\n```\n" if title else f"```\n{block}\n```\n")
    args = component_args(registry, name)
    if args:
        parts.append(table(["argument", "type", "default", "meaning"],
                           [[f"`{a.name}`", a.type, a.default, a.meaning] for a in args]))
    else:
        parts.append("No arguments.\n")
    parts.append(f"Source: `{target.__module__.replace('.', '/')}.py`\n")
    return "\n".join(parts)


def render_components() -> str:
    parts = []
    for registry, title in KINDS:
        parts.append(f"## {title}\n")
        parts.append(KIND_TEXT[registry.kind])
        parts.append(", ".join(f"[{n}](#{_anchor(n)})" for n in registry.names()) + "\n")
        for name in registry.names():
            parts.append(render_component(registry, name))
    return "\n".join(parts)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the document
def _register_components() -> None:
    from .. import components  # noqa: F401  (fills the registries)


def render() -> str:
    """The whole of docs/configs.md."""
    _register_components()
    sections = [("Sizes", SIZES), ("`_base_`", INHERITANCE), ("Your own dataset", EXAMPLE),
                ("Top-level keys", SCHEMA_INTRO)]
    contents = [f"[{label}](#{_anchor(text.splitlines()[0].removeprefix('## '))})"
                for label, text in sections]
    contents += [f"[{title}](#{_anchor(title)})" for _, title in KINDS]
    head = (f"# Config reference\n\n"
            f"Generated by `{COMMAND}` from the config schema "
            f"(segq/config/schema.py, segq/config/quant.py) and the component registries; "
            f"edit those (or the text in segq/config/reference.py) and regenerate: "
            f"tests/test_config_reference.py fails when this file is out of date.\n\n"
            f"Contents: {' · '.join(contents)}\n")
    text = "\n".join([head, SIZES, INHERITANCE, EXAMPLE, render_schema(), render_components()])
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def missing_meanings() -> dict[str, list[str]]:
    """``"kind Name" -> [argument, ...]`` for the arguments no docstring explains (injected
    ones left out: segq sets them)."""
    _register_components()
    out = {}
    for registry, _ in KINDS:
        for name in registry.names():
            missing = [a.name for a in component_args(registry, name)
                       if not a.meaning and not a.injected]
            if missing:
                out[f"{registry.kind} {name}"] = missing
    return out


def meaning_sources() -> dict[str, dict[str, str]]:
    """``"kind Name" -> {argument: source}`` (``args``, ``leads``, ``names`` or ``""``)."""
    _register_components()
    return {f"{registry.kind} {name}": {a.name: a.source for a in component_args(registry, name)}
            for registry, _ in KINDS for name in registry.names()}
