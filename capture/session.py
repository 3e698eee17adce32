"""Open a source (video file, folder of per-camera videos) with its calibration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from calibration.camera import Camera, uncalibrated
from calibration.io import load_calibration
from capture.replay import SessionReplay
from capture.sources import FrameSource, sources_from_path
from core.errors import CalibrationError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "assets" / "demo"
CALIBRATION_NAME = "calibration.toml"


@dataclass
class Session:
    """The replay and one camera model per source (same order)."""

    replay: SessionReplay
    cameras: list[Camera]

    @property
    def calibrated(self) -> bool:
        return len(self.cameras) >= 2 and all(c.calibrated for c in self.cameras)


def open_session(
    source: str | Path | None = None,
    calibration: str | Path | None = None,
    uncalibrated_mode: bool = False,
    realtime: bool = False,
    loop: bool = False,
) -> Session:
    """Open ``source`` (default: the bundled demo). A folder's own ``calibration.toml`` is used
    when no calibration file is given. Raises SourceError / CalibrationError with a clear message."""
    path = Path(source) if source is not None else DEMO_DIR
    if calibration is None and path.is_dir() and (path / CALIBRATION_NAME).is_file():
        calibration = path / CALIBRATION_NAME
    sources = sources_from_path(path)
    replay = SessionReplay(sources, realtime=realtime, loop=loop)
    replay.open()
    if calibration is None or uncalibrated_mode:
        cameras = [uncalibrated(s.name, s.image_size) for s in sources]
    else:
        try:
            cameras = match_calibration(Path(calibration), sources)
        except CalibrationError:
            replay.close()
            raise
    return Session(replay, cameras)


def match_calibration(path: Path, sources: list[FrameSource]) -> list[Camera]:
    """The calibrated camera for each source: by name, or by order when no name matches."""
    cameras, _ = load_calibration(path)
    if len(cameras) != len(sources):
        raise CalibrationError(
            f"calibration file {path}: has {len(cameras)} camera(s) but the source has {len(sources)} "
            f"({', '.join(s.name for s in sources)})"
        )
    by_name = {c.name: c for c in cameras}
    if all(s.name in by_name for s in sources):
        matched = [by_name[s.name] for s in sources]
    else:
        log.warning("calibration %s: camera names do not match the sources; matching by order", path)
        matched = cameras
    for cam, source in zip(matched, sources, strict=True):
        if tuple(cam.image_size) != tuple(source.image_size):
            raise CalibrationError(
                f"calibration file {path}: camera {cam.name!r} is calibrated for {cam.image_size[0]}x{cam.image_size[1]} "
                f"but source {source.name!r} delivers {source.image_size[0]}x{source.image_size[1]}"
            )
    return matched
