"""Read other tools' calibrations: Qualisys QTM (``.qca.txt`` XML, as Pose2Sim ships it) and
caliscope (``camera_array.toml`` / ``config.toml``). calibration.formats picks the reader."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from calibration import validate
from core.camera import Camera
from core.errors import CalibrationError
from core.geometry import rodrigues_to_matrix

QUALISYS_SUBPIXELS = 64.0  # QTM stores sensor coordinates in 1/64 pixel


def read_qualisys(path: str | Path) -> list[Camera]:
    """Cameras from a QTM calibration: K = sensor units / 64 minus the video window's offset,
    world-to-camera R = diag(1, -1, -1) @ M (M: the transform's rotation, row-major; QTM cameras
    look along -z with y up), t = -R @ C with C = the transform's position in mm / 1000."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CalibrationError(f"Qualisys calibration {path}: not readable XML ({exc})") from exc
    cameras = []
    for i, node in enumerate(root.iter("camera")):
        name = node.get("serial") or f"cam{i + 1:02d}"
        where = f"Qualisys calibration {path}: camera {name}"
        transform, intrinsic, fov = node.find("transform"), node.find("intrinsic"), node.find("fov_video")
        if transform is None or intrinsic is None or fov is None:
            raise CalibrationError(f"{where}: missing transform, intrinsic or fov_video")
        try:
            M = np.array([[float(transform.get(f"r{r}{c}")) for c in (1, 2, 3)] for r in (1, 2, 3)])
            C = np.array([float(transform.get(k)) for k in "xyz"]) / 1000.0
            values = {k: float(v) for k, v in intrinsic.attrib.items() if k != "model"}
            get = values.__getitem__
            left, top = float(fov.get("left")), float(fov.get("top"))
            width = int(fov.get("right")) - int(left) + 1
            height = int(fov.get("bottom")) - int(top) + 1
            K = np.array([
                [get("focalLengthU") / QUALISYS_SUBPIXELS, 0.0, get("centerPointU") / QUALISYS_SUBPIXELS - left],
                [0.0, get("focalLengthV") / QUALISYS_SUBPIXELS, get("centerPointV") / QUALISYS_SUBPIXELS - top],
                [0.0, 0.0, 1.0],
            ])  # fmt: skip
            dist = np.array([get("radialDistortion1"), get("radialDistortion2"), get("tangentalDistortion1"),
                             get("tangentalDistortion2"), get("radialDistortion3")])  # fmt: skip
        except (TypeError, ValueError, KeyError) as exc:
            raise CalibrationError(f"{where}: a missing or non-numeric field ({exc})") from exc
        R = np.diag([1.0, -1.0, -1.0]) @ M
        cameras.append(Camera(name, (width, height), K, dist, R, -R @ C))
    if not cameras:
        raise CalibrationError(f"Qualisys calibration {path}: no <camera> entries")
    validate.check_cameras(f"Qualisys calibration {path}", cameras)
    return cameras


def read_caliscope(path: str | Path) -> list[Camera]:
    """Cameras from caliscope's ``camera_array.toml`` (``[cameras.N]``) or ``config.toml``
    (``[cam_N]``): matrix, distortions, rotation (3x3 world-to-camera, or Rodrigues), translation
    (metres), size. Cameras marked ``ignore`` are left out."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"caliscope calibration {path}: not readable TOML ({exc})") from exc
    tables: dict[str, object]
    if isinstance(data.get("cameras"), dict):
        tables = {f"cam_{k}": v for k, v in data["cameras"].items()}
    else:
        tables = {k: v for k, v in data.items() if k.startswith("cam_") and isinstance(v, dict)}
    cameras = [_caliscope_camera(path, name, table) for name, table in sorted(tables.items(), key=_caliscope_order)
               if not (isinstance(table, dict) and table.get("ignore", False) is True)]  # fmt: skip
    if not cameras:
        raise CalibrationError(f"caliscope calibration {path}: no camera tables")
    validate.check_cameras(f"caliscope calibration {path}", cameras)
    return cameras


def _caliscope_order(item: tuple[str, object]) -> tuple[int, str]:
    number = item[0].rsplit("_", 1)[-1]
    return (int(number), item[0]) if number.isdigit() else (1 << 30, item[0])


def _caliscope_camera(path: Path, name: str, table: object) -> Camera:
    where = f"caliscope calibration {path}: camera {name!r}"
    if not isinstance(table, dict):
        raise CalibrationError(f"{where} is not a table")
    missing = [f for f in ("size", "matrix", "distortions") if f not in table]
    if missing:
        raise CalibrationError(f"caliscope calibration {path}: [{name}] is missing {', '.join(missing)}")
    K = validate.as_array(where, "matrix", table["matrix"], (3, 3))
    dist = validate.as_array(where, "distortions", table["distortions"]).ravel()
    R = t = None
    if "rotation" in table and "translation" in table:
        rotation = validate.as_array(where, "rotation", table["rotation"])
        if rotation.shape == (3,):
            validate.check_rodrigues(where, rotation)
            rotation = rodrigues_to_matrix(rotation)
        elif rotation.shape != (3, 3):
            raise CalibrationError(f"{where} field rotation must have shape (3,) or (3, 3), got {rotation.shape}")
        R, t = rotation, validate.as_array(where, "translation", table["translation"], (3,))
    return Camera(name, validate.image_size(where, table["size"]), K, dist, R, t)
