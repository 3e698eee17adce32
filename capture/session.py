"""Open a source (video file, folder of per-camera videos) with its calibration."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
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
SESSION_PREFIX = "session:"


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
    room: str | Path | None = None,
) -> Session:
    """Open ``source`` (default: the bundled demo), or the live cameras of a ``room`` file. A
    folder's own ``calibration.toml`` is used when no calibration file is given. Raises
    SourceError / CalibrationError / RoomError with a clear message."""
    if room is not None:
        from capture.room import load_room, open_room

        config = load_room(room)
        if calibration is not None:
            config.calibration = Path(calibration)
        group, cameras = open_room(config, uncalibrated_mode)
        group.open()
        return Session(group, cameras)  # type: ignore[arg-type]
    text = str(source) if source is not None else ""
    if text.startswith(SESSION_PREFIX):  # a recorded session: its own videos, timestamps and calibration
        from recording.reader import recorded_sources

        path = Path(text[len(SESSION_PREFIX) :])
        sources: list[FrameSource] = list(recorded_sources(path))
    else:
        path = Path(source) if source is not None else DEMO_DIR
        sources = sources_from_path(path)
    if calibration is None and path.is_dir() and (path / CALIBRATION_NAME).is_file():
        calibration = path / CALIBRATION_NAME
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
    """The calibrated camera for each source (see :func:`match_cameras`)."""
    return match_cameras(path, [(s.name, tuple(s.image_size)) for s in sources])  # type: ignore[misc]


def match_cameras(path: Path, views: list[tuple[str, tuple[int, int]]]) -> list[Camera]:
    """The calibrated camera for each view (name, image size) from a calibration file (ours,
    caliscope or Qualisys): by name, or by order when the names do not match (then renamed to the
    view's name). Every camera must be calibrated for its view's image size."""
    from calibration.importers import read_any

    if path.suffix.lower() == ".toml" and _ours(path):
        cameras, metadata = load_calibration(path)
        if metadata.get("kind") == "intrinsics":
            raise CalibrationError(f"calibration file {path}: holds intrinsics only (no camera positions); calibrate the room")
    else:
        cameras = read_any(path)
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
    for cam, (name, size) in zip(matched, views, strict=True):
        if not cam.calibrated:
            raise CalibrationError(f"calibration file {path}: camera {cam.name!r} has no position (intrinsics only)")
        if tuple(cam.image_size) != tuple(size):
            raise CalibrationError(
                f"calibration file {path}: camera {cam.name!r} is calibrated for {cam.image_size[0]}x{cam.image_size[1]} "
                f"but source {name!r} delivers {size[0]}x{size[1]}"
            )
    return matched


def _ours(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # load_calibration reports it
    return "[cameras." not in text and "cam_id" not in text
