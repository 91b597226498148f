"""The package's layers: no import cycles between sub-packages, data never imports models or metrics,
ops and metrics import without Lightning, nets never import the benchmark layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "posereg"
FORBIDDEN = {
    "data": {"metrics", "nets", "methods", "losses", "codecs", "runs", "report", "cli", "bench"},
    "ops": {"data", "metrics", "nets", "methods", "losses", "runs", "report", "cli", "bench"},
    "metrics": {"data", "nets", "methods", "losses", "runs", "report", "cli", "bench"},
    "nets": {"data", "metrics", "methods", "losses", "runs", "report", "cli", "bench"},
    "report": {"cli", "bench", "methods", "nets", "data", "losses"},
}


def _unit(path: Path) -> str:
    """The layer a module belongs to: its sub-package, or its own name for top-level modules."""
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """posereg sub-packages / modules imported anywhere in a file (also inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        out |= {n.split(".")[1] for n in names if n.startswith("posereg.") and n.count(".") >= 1}
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        unit = _unit(path)
        graph.setdefault(unit, set()).update(d for d in _imports(path) if d != unit)
    return graph


def test_layers_never_import_what_they_must_not():
    graph = _graph()
    bad = {(a, b) for a, deps in graph.items() for b in deps if b in FORBIDDEN.get(a, set())}
    assert not bad, f"forbidden imports (layer -> layer): {sorted(bad)}"


def test_no_import_cycle_between_sub_packages():
    graph = _graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle.extend(stack[stack.index(dep):] + [node, dep] if dep in stack else [node, dep])
                return True
            if state.get(dep) is None and visit(dep, [*stack, node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


@pytest.mark.parametrize("module", ["posereg.ops", "posereg.metrics", "posereg.skeletons", "posereg.geometry"])
def test_pure_layers_import_without_lightning(module):
    code = (f"import sys, {module}; "
            "print(any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
