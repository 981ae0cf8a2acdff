"""The package layout's rules (DESIGN.md, docs/architecture.md): imports point ui -> app -> engine
and never back, no module imports itself in a circle (function-level imports included), engine/
needs nothing but numpy and numba, and every module imports."""
import ast
import importlib
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

PACKAGES = ("engine", "app", "ui")
RANK = {"engine": 0, "app": 1, "ui": 2}
ENGINE_THIRD_PARTY = {"numpy", "numba", "llvmlite"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in its body, resolved to full dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:                    # `from pkg import module` names a module
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_the_walker_sees_the_imports_it_must_see():
    # a witness: if the walker broke, the rules below would pass vacuously
    assert "engine.circuit.compiler" in GRAPH["engine.learn.learner"]
    assert "app.session" in GRAPH["app.workspace"]
    assert len(MODULES) > 40


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name):
    top = name.split(".")[0]
    for dep in GRAPH[name]:
        root = dep.split(".")[0]
        if root in RANK:
            assert RANK[root] <= RANK[top], f"{name} imports {dep}: {top}/ must not import {root}/"
        elif top == "engine" and root not in sys.stdlib_module_names:
            assert root in ENGINE_THIRD_PARTY, f"{name} imports {dep}: engine/ uses numpy/numba only"


def test_no_import_cycles():
    internal = {m: sorted(d for d in deps if d in MODULES and d != m) for m, deps in GRAPH.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in internal[m]:
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(internal):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    importlib.import_module(name)
