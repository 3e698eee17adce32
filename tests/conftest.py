"""Shared test set-up."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
    # Many 3D viewports come and go in one test process; pyqtgraph compiles its shaders once, so
    # every OpenGL context must share them (as the app does: app.launch.new_application).
    from PyQt6.QtCore import QCoreApplication, Qt

    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)


if TYPE_CHECKING:
    from engine.body import BodyModel
    from engine.heatformer.model import HeatFormer


@pytest.fixture(scope="module")
def body() -> BodyModel:
    """The bundled default body model (assets/body/default_body.npz)."""
    from engine.body import BodyModel

    return BodyModel.from_file()


@pytest.fixture(scope="module")
def model() -> HeatFormer:
    """HeatFormer-S with the shipped weights (assets/models/heatformer_s.pt)."""
    from engine.heatformer.runtime import load_heatformer

    return load_heatformer()
