"""The non-GUI packages never import Qt, pyqtgraph or OpenGL (they must run headless)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [p for p in ("core", "calibration", "capture", "engine", "recording", "monitoring") if (ROOT / p).is_dir()]
FORBIDDEN = ("PyQt6", "PySide6", "pyqtgraph", "OpenGL")


def forbidden_imports(source: str, filename: str = "<string>") -> list[str]:
    """Forbidden modules imported by ``source`` (import statements, importlib/__import__ calls)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [f"{filename}:{node.lineno}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def python_files():
    return sorted(f for p in PACKAGES for f in (ROOT / p).rglob("*.py"))


def test_the_checker_detects_qt_imports():
    assert forbidden_imports("import PyQt6.QtCore")
    assert forbidden_imports("from PySide6 import QtWidgets")
    assert forbidden_imports("def f():\n    import pyqtgraph as pg\n")
    assert forbidden_imports("from OpenGL.GL import glBegin")
    assert forbidden_imports("import importlib\nimportlib.import_module('PyQt6.QtGui')")
    assert not forbidden_imports("import numpy\nfrom core.types import Frame\nimport PyQt6_sip_like_name_elsewhere")


def test_there_are_files_to_check():
    files = python_files()
    assert {"core", "calibration", "capture", "engine"} <= set(PACKAGES)
    assert any(f.name == "pipeline.py" for f in files) and len(files) >= 10


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_gui_imports(path):
    assert forbidden_imports(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))) == []


def test_importing_the_engine_loads_no_qt():
    code = (
        "import core.types, calibration.io, capture.session, engine.pipeline, engine.runner, engine.triangulate; "
        "import sys; print(any(m.startswith(('PyQt6','pyqtgraph')) for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout + result.stderr
