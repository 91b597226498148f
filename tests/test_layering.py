"""The package's layers: one folder per feature, loose modules only for the leaves, no import circle (between
folders, or between modules anywhere), no arrow a layer must not have, and docs/architecture.md §1 saying the
same (its unit list is the tree, its table of layer rules is FORBIDDEN)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "posereg"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# the only loose modules: shared leaves, and `train`, the `python -m posereg.train` entry of posereg-sweep
LEAVES = {"errors", "paths", "config", "jsonio", "console", "geometry", "skeletons", "weights", "codecs", "devices",
          "overrides", "train"}
LEAF_MAY_IMPORT = {"codecs": {"ops"}, "train": {"cli"}}  # a leaf imports leaves only, except these
TOP = {"recipes", "api", "cli"}  # the layers that put the others together: no lower layer imports them
FORBIDDEN = {
    "ops": {"data", "metrics", "nets", "losses", "methods", "runs", "training", "inference", "grid", "report",
            "bench", "viz", *TOP},
    "metrics": {"data", "nets", "losses", "methods", "runs", "training", "inference", "grid", "report", "bench",
                "viz", *TOP},
    "nets": {"data", "metrics", "losses", "methods", "runs", "training", "inference", "grid", "report", "bench",
             "viz", *TOP},
    "data": {"metrics", "nets", "losses", "methods", "codecs", "runs", "training", "inference", "grid", "report",
             "bench", "viz", *TOP},
    "losses": {"data", "methods", "runs", "training", "inference", "grid", "report", "bench", "viz", *TOP},
    "methods": {"training", "inference", "grid", "report", "bench", *TOP},
    "runs": {"ops", "metrics", "nets", "data", "losses", "methods", "codecs", "training", "inference", "grid",
             "report", "bench", "viz", *TOP},
    "training": {"metrics", "nets", "losses", "methods", "inference", "grid", "report", "bench", "viz", *TOP},
    "viz": {"methods", "runs", "training", "inference", "grid", "report", "bench", *TOP},
    "inference": {"training", "grid", "report", "bench", *TOP},
    "report": {"ops", "metrics", "nets", "data", "losses", "methods", "codecs", "training", "inference", "grid",
               "bench", "viz", *TOP},
    "grid": {"training", "inference", "bench", *TOP},
    "bench": {"inference", *TOP},
    "recipes": {"grid", "report", "api", "cli"},  # what a command runs: torch, Lightning and the rest
    "api": {"grid", "report", "bench", "cli"},  # light functions that import their recipe when they run it
    "cli": set(),  # the top: the entry points may import every layer
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}
FOLDERS = {p.parent.name for p in SRC.glob("*/__init__.py")}
LOOSE = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (annotations only: they never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _imported_modules(path: Path) -> set[str]:
    """posereg modules a file imports, at module level or inside functions (not type-checking-only imports)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` imports that module; `from module import name` the module
            names |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                      for a in node.names}
    out = set()
    for name in (n for n in names if n == "posereg" or n.startswith("posereg.")):
        while name not in MODULES:
            name = name.rpartition(".")[0]
        out.add(name)
    return out


def _unit(module: str) -> str:
    """The layer of a module: its folder, or its own name for a loose module ('' for the package itself)."""
    return module.split(".")[1] if module != "posereg" else ""


def _module_graph() -> dict[str, set[str]]:
    return {m: _imported_modules(p) - {m, "posereg"} for m, p in MODULES.items()}


def _unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, deps in _module_graph().items():
        unit = _unit(module)
        if unit:
            graph.setdefault(unit, set()).update(_unit(d) for d in deps if _unit(d) not in ("", unit))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_a_folder_per_feature_and_loose_modules_only_for_the_leaves():
    assert LOOSE == LEAVES, f"loose modules that are not leaves: {sorted(LOOSE - LEAVES)}"
    assert set(FORBIDDEN) == FOLDERS, f"folders without layer rules: {sorted(FOLDERS - set(FORBIDDEN))}"


def test_layers_never_import_what_they_must_not():
    graph = _unit_graph()
    bad = {(a, b) for a, deps in graph.items() for b in deps if b in FORBIDDEN.get(a, set())}
    leaves = {(m, d) for m, deps in _module_graph().items() if _unit(m) in LEAVES
              for d in deps if _unit(d) not in LEAVES and _unit(d) not in LEAF_MAY_IMPORT.get(_unit(m), set())}
    assert not bad, f"forbidden imports (layer -> layer): {sorted(bad)}"
    assert not leaves, f"leaves importing folders: {sorted(leaves)}"


def test_no_import_cycle_between_folders():
    assert not _cycles(_unit_graph()), f"import cycles between folders: {_cycles(_unit_graph())}"


def test_no_import_cycle_between_modules():
    """Function-local imports count: hiding a circle inside a function leaves the modules knotted."""
    assert not _cycles(_module_graph()), f"import cycles between modules: {_cycles(_module_graph())}"


def test_the_cycle_finder_sees_a_circle_hidden_in_a_function(tmp_path: Path):
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from posereg.data.records import read_something\n")
    assert "posereg.data.records" in _imported_modules(a)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _architecture_section_1() -> str:
    text = ARCHITECTURE.read_text()
    return text[text.index("## 1."):text.index("## 2.")]


def test_architecture_lists_every_folder_and_leaf_of_the_tree():
    rows = re.findall(r"^\| `([a-z_]+)(/|\.py)` \|", _architecture_section_1(), flags=re.M)
    folders = {name for name, kind in rows if kind == "/"}
    leaves = {name for name, kind in rows if kind == ".py"}
    assert folders == FOLDERS, f"docs/architecture.md §1 vs the tree: {sorted(folders ^ FOLDERS)}"
    assert leaves == LOOSE, f"docs/architecture.md §1 vs the loose modules: {sorted(leaves ^ LOOSE)}"


def test_architecture_layer_rules_are_the_tested_ones():
    section = _architecture_section_1()
    table = section[section.index("| layer | never imports |"):]
    rules = {m.group(1): set(re.findall(r"`([a-z_]+)`", m.group(2)))
             for m in re.finditer(r"^\| `([a-z_]+)` \| (.+) \|$", table, flags=re.M)}
    assert rules == FORBIDDEN


@pytest.mark.parametrize("module", ["posereg.ops", "posereg.metrics", "posereg.skeletons", "posereg.geometry",
                                    "posereg.runs", "posereg.report"])
def test_pure_layers_import_without_lightning(module):
    code = (f"import sys, {module}; "
            "print(any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


LIGHT = ["posereg", "posereg.api.config", "posereg.api.train", "posereg.api.evaluate", "posereg.api.model",
         "posereg.api.export", "posereg.runs.open", "posereg.cli.train", "posereg.cli.eval", "posereg.cli.predict",
         "posereg.cli.export", "posereg.cli.sweep"]


def test_the_api_and_the_entry_points_import_without_torch():
    """`import posereg`, the API's functions and the entry points answer --help and typos before torch loads."""
    code = (f"import sys; import {', '.join(LIGHT)}; import posereg; posereg.compose; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'timm'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
