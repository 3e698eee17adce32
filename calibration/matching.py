"""Match a calibration file's cameras to the views of a source: by name, else by order, each
camera fitted to its view's image size."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from calibration.formats import read_calibration
from core.camera import Camera, shifted_to_size
from core.errors import CalibrationError

log = logging.getLogger(__name__)

SMALL_MISMATCH_PX = 16  # a calibration this close to the video's size is adjusted (with a warning)
SMALL_MISMATCH_FRACTION = 0.02


def match_cameras(path: Path, views: list[tuple[str, tuple[int, int]]]) -> list[Camera]:
    """The calibrated camera for each view (name, image size) from a calibration file (ours,
    caliscope or Qualisys): by name, or by order when the names do not match (then renamed to the
    view's name). Every camera must be calibrated for its view's image size."""
    cameras, metadata = read_calibration(path)
    if metadata.get("kind") == "intrinsics":
        raise CalibrationError(f"calibration file {path}: holds intrinsics only (no camera positions); calibrate the room")
    if len(cameras) != len(views):
        raise CalibrationError(
            f"calibration file {path}: has {len(cameras)} camera(s) but the source has {len(views)} "
            f"({', '.join(n for n, _ in views)})"
        )
    by_name = {c.name: c for c in cameras}
    if all(n in by_name for n, _ in views):
        matched = [by_name[n] for n, _ in views]
    else:
        log.warning("calibration %s: camera names do not match the sources; matching by order", path)
        matched = [replace(c, name=n) for c, (n, _) in zip(cameras, views, strict=True)]
    for cam in matched:
        if not cam.calibrated:
            raise CalibrationError(f"calibration file {path}: camera {cam.name!r} has no position (intrinsics only)")
    return [fit_size(path, cam, name, size) for cam, (name, size) in zip(matched, views, strict=True)]


def fit_size(path: Path, cam: Camera, source: str, size: tuple[int, int]) -> Camera:
    """The camera as calibrated when its size matches the source's; a small difference (at most
    16 px and 2 % a side, e.g. 1088 vs 1080 px) is a warning and the principal point moves by half
    of it (:func:`core.camera.shifted_to_size`); a larger one is an error."""
    (cw, ch), (w, h) = cam.image_size, size
    if (cw, ch) == (w, h):
        return cam
    told = f"calibration file {path}: camera {cam.name!r} is calibrated for {cw}x{ch} but source {source!r} delivers {w}x{h}"
    if not all(abs(a - b) <= min(SMALL_MISMATCH_PX, SMALL_MISMATCH_FRACTION * b) for a, b in ((cw, w), (ch, h))):
        raise CalibrationError(told)
    log.warning("%s; principal point shifted by half the difference (cx %+.1f px, cy %+.1f px)", told, (w - cw) / 2, (h - ch) / 2)
    return shifted_to_size(cam, (w, h))
