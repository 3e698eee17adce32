"""Shared test set-up."""

from __future__ import annotations

import os

if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
    # Many 3D viewports come and go in one test process; pyqtgraph compiles its shaders once, so
    # every OpenGL context must share them (as the app does: app.launch.new_application).
    from PyQt6.QtCore import QCoreApplication, Qt

    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
