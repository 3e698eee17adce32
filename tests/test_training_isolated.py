"""The product never imports the training lab: no module of ``core``, ``calibration``, ``capture``,
``engine``, ``recording``, ``app`` or ``main.py`` imports ``training``, at the top or inside a
function (read with ``ast``, so a lazy import counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("core", "calibration", "capture", "engine", "recording", "app")
LAB = "training"


def product_modules() -> list[Path]:
    files = [path for package in PRODUCT for path in sorted((ROOT / package).rglob("*.py"))]
    return [*files, ROOT / "main.py"]


def lab_imports(path: Path) -> list[str]:
    """``file:line: import ...`` for every import of the lab in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]
        else:
            continue
        for name in names:
            if name == LAB or name.startswith(f"{LAB}."):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {name}")
    return found


def test_the_product_never_imports_training() -> None:
    modules = product_modules()
    assert len(modules) > 50  # the packages were found
    offending = [line for path in modules for line in lab_imports(path)]
    assert not offending, "the product imports the training lab:\n" + "\n".join(offending)


def test_the_check_sees_top_level_and_lazy_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import training.train\n"
        "from engine.body import BodyModel\n"
        "def run():\n"
        "    from training.synth.scene import sample_scene\n"
        "    import trainingwheels\n"
    )
    assert lab_imports(sample) == ["sample.py:1: imports training.train", "sample.py:4: imports training.synth.scene"]
