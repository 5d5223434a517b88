"""The package's shape: imports flow one way (config -> builders -> engine -> deploy -> bench,
quant beside the engine), no module imports itself back through others, and every entry
script is a thin CLI over segq.cli that answers --help."""
import ast
import runpy
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "segq"
SCRIPTS = sorted([*REPO.glob("*.py"), *(REPO / "slim").glob("*.py"),
                  *(REPO / "deploy" / "python").glob("*.py"), *(REPO / "tools").glob("*.py")])
SCRIPTS = [s for s in SCRIPTS if s.name != "setup.py"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def segq_imports(path: Path) -> set[str]:
    """The segq modules ``path`` imports anywhere in its body (function-level included)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [f"{module}.{a.name}" for a in node.names]
            found.update(n if _is_module(n) else module for n in names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "segq" or m.startswith("segq.")}


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): segq_imports(p) - {module_name(p)} for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("importer, forbidden", [
    ("segq.engine", ("segq.deploy", "segq.quant", "segq.bench")),
    ("segq.deploy", ("segq.quant", "segq.bench", "segq.engine.trainer", "segq.engine.hooks")),
    ("segq.data", ("segq.engine", "segq.deploy", "segq.quant", "segq.bench")),
    ("segq.models", ("segq.engine", "segq.deploy", "segq.quant", "segq.bench")),
    ("segq.config", ("segq.engine", "segq.deploy", "segq.quant", "segq.bench")),
])
def test_imports_flow_one_way(importer, forbidden):
    wrong = sorted(f"{m} imports {d}" for m, deps in import_graph().items()
                   if m == importer or m.startswith(importer + ".")
                   for d in deps if d.startswith(forbidden))
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    # a package importing its own submodules (segq.deploy -> segq.deploy.predictor) is how
    # packages re-export, and a submodule importing its package is not counted either
    graph = {m: {d for d in deps if not m.startswith(d + ".")}
             for m, deps in import_graph().items()}
    graph = {m: deps & graph.keys() for m, deps in graph.items()}
    # Tarjan's strongly connected components
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def _imported_names(node) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] if not node.level else []
    return [a.name for a in node.names] if isinstance(node, ast.Import) else []


def test_one_module_imports_paddleslim():
    importers = sorted(module_name(p) for p in PACKAGE.rglob("*.py")
                       if any(name == "paddleslim" or name.startswith("paddleslim.")
                              for n in ast.walk(ast.parse(p.read_text()))
                              for name in _imported_names(n)))
    assert importers == ["segq.quant.paddleslim_adapter"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_script_is_a_thin_cli_that_answers_help(script, capsys):
    tree = ast.parse(script.read_text())
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert set(functions) <= {"main", "parse_args"}, f"{script}: logic belongs in segq"
    assert "segq.cli" in script.read_text()
    main = runpy.run_path(str(script))["main"]
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_tests_import_only_main_from_scripts():
    wrong = []
    for test in (REPO / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(test.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("tools.", "slim.", "deploy.python")):
                wrong += [f"{test.name}: {node.module}.{a.name}" for a in node.names
                          if a.name != "main"]
    assert not wrong, wrong
