"""Read and write calibration TOML files (anipose-compatible layout + ``[metadata]``).

Layout::

    [metadata]
    format_version = 1
    world_frame = "Z up, metres, floor at z = 0"
    ...
    [cam_0]
    name = "cam01"
    size = [1080, 1920]          # width, height in px
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2, k3]
    rotation = [rx, ry, rz]      # Rodrigues, world to camera
    translation = [tx, ty, tz]   # metres
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from calibration import validate
from core import geometry
from core.camera import Camera
from core.errors import CalibrationError
from core.tomlfile import read_toml

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_REQUIRED = ("name", "size", "matrix", "distortions", "rotation", "translation")
_SHAPES = {"size": (2,), "matrix": (3, 3), "rotation": (3,), "translation": (3,)}


def load_calibration(path: str | Path) -> tuple[list[Camera], dict[str, Any]]:
    """Read a calibration TOML file. Returns the cameras (file order) and the metadata table."""
    path = Path(path)
    data = read_toml(path, "calibration file", CalibrationError)
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise CalibrationError(f"calibration file {path}: [metadata] must be a table")
    version = metadata.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CalibrationError(f"calibration file {path}: unsupported format_version {version!r}")
    tables = [(key, value) for key, value in data.items() if key != "metadata" and isinstance(value, dict)]
    if not tables:
        raise CalibrationError(f"calibration file {path}: no camera tables")
    cameras = [_camera_from_table(path, key, table) for key, table in tables]
    # An intrinsics-only file holds cameras at the origin by design: check their positions only in a room.
    validate.check_cameras(f"calibration file {path}", cameras, positions=metadata.get("kind") != "intrinsics")
    return cameras, metadata


def save_calibration(path: str | Path, cameras: list[Camera], metadata: dict[str, Any] | None = None) -> None:
    """Write cameras (all calibrated) and metadata to a calibration TOML file."""
    meta = {"format_version": FORMAT_VERSION, **(metadata or {})}
    meta["format_version"] = FORMAT_VERSION
    lines = ["[metadata]", *(_toml_line(k, v) for k, v in meta.items()), ""]
    for i, cam in enumerate(cameras):
        if not cam.calibrated:
            raise CalibrationError(f"camera {cam.name!r}: cannot save an uncalibrated camera")
        table = {
            "name": cam.name,
            "size": [int(v) for v in cam.image_size],
            "matrix": np.asarray(cam.K).tolist(),
            "distortions": np.asarray(cam.dist, float).tolist(),
            "rotation": cam.rvec.tolist(),
            "translation": np.asarray(cam.t, float).tolist(),
        }
        lines += [f"[cam_{i}]", *(_toml_line(k, v) for k, v in table.items()), ""]
    try:
        Path(path).write_text("\n".join(lines), encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"calibration file {path}: cannot write ({exc.strerror or exc})") from exc


def _camera_from_table(path: Path, key: str, table: dict[str, Any]) -> Camera:
    missing = [f for f in _REQUIRED if f not in table]
    if missing:
        raise CalibrationError(f"calibration file {path}: camera [{key}] is missing field(s) {', '.join(missing)}")
    if not isinstance(table["name"], str) or not table["name"].strip():
        raise CalibrationError(f"calibration file {path}: camera [{key}] field name must be a non-empty text")
    where = f"calibration file {path}: camera {table['name']!r} ([{key}])"
    arrays = {f: validate.as_array(where, f, table[f], _SHAPES.get(f)) for f in _REQUIRED if f not in ("name", "size")}
    dist = arrays["distortions"].ravel()
    if dist.size not in (4, 5, 8):
        raise CalibrationError(f"{where} field distortions needs 4, 5 or 8 values, got {dist.size}")
    validate.check_rodrigues(where, arrays["rotation"])
    if np.any(dist[5:] != 0):  # the rational model's k4..k6: this app projects with 5 coefficients
        log.warning("%s field distortions: the values after the 5th (%s) are not used; this app models k1 k2 p1 p2 k3 "
                    "(recalibrate without the rational model for exact undistortion)", where, dist[5:].tolist())  # fmt: skip
    return Camera(
        name=table["name"],
        image_size=validate.image_size(where, table["size"]),
        K=arrays["matrix"],
        dist=np.pad(dist, (0, max(0, 5 - dist.size)))[:5],
        R=geometry.rodrigues_to_matrix(arrays["rotation"]),
        t=arrays["translation"],
    )


def _toml_line(key: str, value: Any) -> str:
    return f"{_toml_key(key)} = {_toml_value(value)}"


def _toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key (camera names may hold spaces, dots)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(str(key))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, np.generic):
        return _toml_value(value.item())
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
