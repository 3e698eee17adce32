"""The import order of DESIGN.md: core < calibration < capture < engine < recording, monitoring <
app < main, with monitoring above recording (its offline run reads recorded sessions with
recording.reader; recording never needs the monitor: events reach a session as plain records).
Every import of every module is read (lazy ones inside functions too): an import that
runs up the order, or between the two packages of the same rank, fails and is named with its line;
so does a cycle between the parts of the code (packages, subpackages and top-level modules)."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"core": 0, "calibration": 1, "capture": 2, "engine": 3, "recording": 4, "monitoring": 5, "app": 6, "main": 7}
ABOVE_THE_PRODUCT = ("tools", "training", "tests")  # may import the product; the product never imports them


def product_modules() -> dict[str, Path]:
    """Module name -> file for every module of the product (packages with an __init__ as the package name)."""
    modules = {"main": ROOT / "main.py"}
    for package in RANK:
        if (ROOT / package).is_dir():
            for path in sorted((ROOT / package).rglob("*.py")):
                parts = path.relative_to(ROOT).with_suffix("").parts
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each absolute import of ours in ``path``, ``from a import b`` as ``a.b``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: relative import (the code uses absolute imports)"
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    ours = set(RANK) | set(ABOVE_THE_PRODUCT)
    return [(line, name) for line, name in found if name.split(".")[0] in ours]


MODULES = product_modules()


def test_the_product_is_read():
    assert {"core.types", "core.camera", "core.formats", "capture.replay", "engine.pipeline", "recording.writer",
            "app.main_window", "main"} <= set(MODULES)  # fmt: skip
    assert len(MODULES) > 60


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_order(module):
    package, where = module.split(".")[0], MODULES[module].relative_to(ROOT)
    wrong = []
    for line, name in imports(MODULES[module]):
        target = name.split(".")[0]
        if target in ABOVE_THE_PRODUCT:
            wrong.append(f"{where}:{line} imports {name} ({target}/ is never imported by the product)")
        elif target != package and RANK[target] >= RANK[package]:
            wrong.append(f"{where}:{line} imports {name}: {package} may not import {target}")
    assert not wrong, "\n".join(wrong)


def unit(module: str) -> str:
    """The part a module belongs to for the cycle check: its subpackage (engine.heatformer), else
    itself (core.types); a package's __init__ is the package's part."""
    parts = module.split(".")
    if len(parts) >= 2 and (ROOT / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def part_graph() -> dict[str, dict[str, str]]:
    """part -> {imported part: where (file:line)}."""
    graph: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for module, path in MODULES.items():
        for line, name in imports(path):
            target = name
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and unit(target) != unit(module):
                graph[unit(module)].setdefault(unit(target), f"{path.relative_to(ROOT)}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_cycle_between_parts():
    graph = part_graph()
    assert "core.camera" in graph["core.types"] or "core.camera" in graph.get("core.formats", {})
    found = cycles(graph)
    edges = [[f"{a}->{b} at {graph[a][b]}" for a in c for b in c if b in graph[a]] for c in found]
    detail = [" <-> ".join(c) + ": " + "; ".join(e) for c, e in zip(found, edges, strict=True)]
    assert not found, "\n".join(detail)


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:1"}, "c": {"a": "c.py:1"}, "d": {"a": "d.py:1"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b": "a.py:1"}, "b": {}}) == []
