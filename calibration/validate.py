"""The one set of sanity checks every calibration reader applies (ours, caliscope, Qualisys).

A file that parses can still be nonsense: a focal length of 1e-30, a distortion of 1e9, a
rotation of 1e308 rad, NaN, or every camera at one point. Such a calibration used to be accepted
and labelled "calibrated" while the 3D keypoints came out all zero. These checks reject it at load
time with one line naming the file, the camera and the field. The bounds are wide: they catch
nonsense and wrong units, not merely poor calibrations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.camera import Camera
from core.errors import CalibrationError

MAX_SIDE_PX = 20000  # larger than any video camera's image side
FOCAL_PER_SIDE = (0.02, 100.0)  # focal / longest image side: about a 175 degree to a 0.6 degree field of view
MAX_RADIAL = 1000.0  # |k1..k6|; OpenCV's rational model reaches tens on wide lenses
MAX_TANGENTIAL = 1.0  # |p1|, |p2|; real lenses are below 0.01
MAX_ROTATION_RAD = 4 * math.pi  # a Rodrigues vector's angle (OpenCV writes at most pi)
MAX_TRANSLATION_M = 1000.0  # a room is not a kilometre across; larger values are millimetres
MIN_BASELINE_M = 0.001  # two cameras closer than 1 mm are the same point
ROTATION_TOLERANCE = 1e-3  # |R R^T - I| for a rotation matrix


def as_array(where: str, name: str, value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a finite float array of ``shape``; else ``CalibrationError("<where> field <name> ...")``."""
    if isinstance(value, bool) or (isinstance(value, list | tuple) and any(isinstance(v, bool | str) for v in _flat(value))):
        raise CalibrationError(f"{where} field {name} is not numeric")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CalibrationError(f"{where} field {name} is not numeric") from exc
    if shape is not None and arr.shape != shape:
        raise CalibrationError(f"{where} field {name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{where} field {name} has non-finite values (NaN or inf)")
    return arr


def image_size(where: str, value: Any) -> tuple[int, int]:
    """A ``size = [width, height]`` field: two whole, positive numbers of pixels."""
    arr = as_array(where, "size", value, (2,))
    if not np.all(arr == np.round(arr)) or not np.all((arr >= 1) & (arr <= MAX_SIDE_PX)):
        raise CalibrationError(f"{where} field size must be [width, height] in whole pixels, 1 to {MAX_SIDE_PX} (got {value})")
    return int(arr[0]), int(arr[1])


def check_rodrigues(where: str, rvec: np.ndarray) -> None:
    """A Rodrigues rotation vector's angle (its length, radians) must be at most 4 pi."""
    largest = float(np.abs(rvec).max())
    angle = largest * float(np.linalg.norm(rvec / largest)) if largest > 0 else 0.0  # no overflow at 1e308
    if not angle <= MAX_ROTATION_RAD:
        raise CalibrationError(
            f"{where} field rotation is not a rotation: a Rodrigues vector of {angle:.3g} rad (at most 4 pi expected)"
        )


def check_camera(source: str, cam: Camera) -> None:
    """One camera's fields, with ``source`` (e.g. ``calibration file X``) and the camera named in
    the error: size, matrix (finite, focal plausible for the image, principal point in the image,
    last row 0 0 1), distortions, rotation (a rotation matrix) and translation (metres)."""
    where = f"{source}: camera {cam.name!r}"
    w, h = cam.image_size
    if not (1 <= w <= MAX_SIDE_PX and 1 <= h <= MAX_SIDE_PX):
        raise CalibrationError(f"{where} field size {w}x{h} is not an image size (1 to {MAX_SIDE_PX} px a side)")
    if cam.K is not None:
        _check_matrix(where, as_array(where, "matrix", cam.K, (3, 3)), (w, h))
    _check_distortions(where, as_array(where, "distortions", cam.dist))
    if cam.R is not None:
        _check_rotation_matrix(where, as_array(where, "rotation", cam.R, (3, 3)))
    if cam.t is not None:
        t = as_array(where, "translation", cam.t, (3,))
        if np.abs(t).max() > MAX_TRANSLATION_M:
            raise CalibrationError(f"{where} field translation {t.tolist()} is over {MAX_TRANSLATION_M:.0f} m "
                                   f"(it is in metres; millimetres?)")  # fmt: skip


def check_rig(source: str, cameras: Sequence[Camera]) -> None:
    """The cameras together: unique names, and no two placed cameras at the same point (a rig
    whose cameras all sit at one point gives no 3D at all)."""
    names = [c.name for c in cameras]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CalibrationError(f"{source}: duplicate camera names {', '.join(duplicates)}")
    placed = [c for c in cameras if c.calibrated]
    if len(placed) < 2:
        return
    centres = {c.name: c.center for c in placed}
    spread = max(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(centres.values(), 2))
    if spread < MIN_BASELINE_M:
        where = np.round(next(iter(centres.values())), 4).tolist()
        raise CalibrationError(f"{source}: all {len(placed)} cameras are at the same point {where} m "
                               f"(field translation; no camera positions were calibrated)")  # fmt: skip
    for a, b in itertools.combinations(placed, 2):
        if np.linalg.norm(centres[a.name] - centres[b.name]) < MIN_BASELINE_M:
            raise CalibrationError(f"{source}: cameras {a.name!r} and {b.name!r} are at the same point "
                                   f"(field translation; closer than {1000 * MIN_BASELINE_M:g} mm)")  # fmt: skip


def check_cameras(source: str, cameras: Sequence[Camera], positions: bool = True) -> None:
    """Every camera (:func:`check_camera`) and, with ``positions``, the rig (:func:`check_rig`)."""
    for cam in cameras:
        check_camera(source, cam)
    if positions:
        check_rig(source, cameras)


def _check_matrix(where: str, K: np.ndarray, size: tuple[int, int]) -> None:
    if not np.allclose(K[2], [0.0, 0.0, 1.0], atol=1e-6):
        raise CalibrationError(f"{where} field matrix must end with the row [0, 0, 1] (got {K[2].tolist()}; singular?)")
    side = max(size)
    low, high = FOCAL_PER_SIDE[0] * side, FOCAL_PER_SIDE[1] * side
    for label, f in (("fx", K[0, 0]), ("fy", K[1, 1])):
        if not low <= f <= high:
            raise CalibrationError(f"{where} field matrix has focal length {label} = {f:.4g} px, not plausible for a "
                                   f"{size[0]}x{size[1]} image (expected {low:.4g} to {high:.4g})")  # fmt: skip
    if abs(K[0, 1]) > 0.1 * K[0, 0] or K[1, 0] != 0:
        raise CalibrationError(f"{where} field matrix has skew {K[0, 1]:.4g} / {K[1, 0]:.4g} (expected about 0)")
    cx, cy = K[0, 2], K[1, 2]
    if not (0 <= cx <= size[0] and 0 <= cy <= size[1]):
        raise CalibrationError(f"{where} field matrix has its principal point ({cx:.4g}, {cy:.4g}) outside the "
                               f"{size[0]}x{size[1]} image")  # fmt: skip


def _check_distortions(where: str, dist: np.ndarray) -> None:
    dist = dist.ravel()
    if dist.size not in (4, 5, 8, 12, 14):
        raise CalibrationError(f"{where} field distortions needs 4, 5, 8, 12 or 14 values, got {dist.size}")
    radial = np.delete(dist, [2, 3])
    if np.abs(radial).max(initial=0.0) > MAX_RADIAL or np.abs(dist[2:4]).max() > MAX_TANGENTIAL:
        raise CalibrationError(f"{where} field distortions {np.round(dist, 6).tolist()} are not a lens's "
                               f"(|k| <= {MAX_RADIAL:g}, |p| <= {MAX_TANGENTIAL:g} expected)")  # fmt: skip


def _check_rotation_matrix(where: str, R: np.ndarray) -> None:
    if np.abs(R @ R.T - np.eye(3)).max() > ROTATION_TOLERANCE or np.linalg.det(R) <= 0:
        raise CalibrationError(f"{where} field rotation is not a rotation (not orthonormal with determinant +1)")


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [x for v in value for x in _flat(v)]
    return [value]
