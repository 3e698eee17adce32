"""The one calibration format detector, and the one reader that uses it.

Formats: ours (TOML, anipose layout plus ``[metadata]``, :mod:`calibration.io`), caliscope
(``camera_array.toml`` with ``[cameras.N]``, or ``config.toml`` with ``[cam_N]`` tables that carry a
``cam_id``) and Qualisys QTM (``.qca.txt`` XML). Every part of the app that opens a calibration file
asks here, so a file is read the same way by the app, the wizard and ``python -m calibration``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from calibration.importers import read_caliscope, read_qualisys
from calibration.io import load_calibration
from core.camera import Camera
from core.errors import CalibrationError

Format = Literal["ours", "caliscope", "qualisys"]
QUALISYS_SUFFIXES = (".qca.txt", ".qca", ".xml")


def detect_format(path: str | Path) -> Format:
    """Which format ``path`` holds: by name for Qualisys, by its tables for TOML. A file that is not
    readable TOML counts as ours, so that our reader names what is wrong with it."""
    path = Path(path)
    if path.name.lower().endswith(QUALISYS_SUFFIXES):
        return "qualisys"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "ours"
    return "caliscope" if _caliscope_tables(data) else "ours"


def _caliscope_tables(data: dict[str, Any]) -> bool:
    if isinstance(data.get("cameras"), dict):
        return True
    return any(k.startswith("cam_") and isinstance(v, dict) and "cam_id" in v for k, v in data.items())


def read_calibration(path: str | Path) -> tuple[list[Camera], dict[str, Any]]:
    """The cameras of a calibration file in any format, and its metadata (ours only; ``{}`` for
    the others). Raises CalibrationError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path}: not found")
    kind = detect_format(path)
    if kind == "qualisys":
        return read_qualisys(path), {}
    if kind == "caliscope":
        return read_caliscope(path), {}
    return load_calibration(path)


def read_cameras(path: str | Path) -> list[Camera]:
    """The cameras of a calibration file in any format (see :func:`read_calibration`)."""
    return read_calibration(path)[0]
