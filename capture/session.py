"""Open a source (video file, folder of per-camera videos) with its calibration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from calibration.matching import match_cameras
from capture.recorded import recorded_sources
from capture.replay import SessionReplay
from capture.room import load_room, open_room, open_url
from capture.sources import FrameSource, sources_from_path
from core.camera import Camera, rig_calibrated, uncalibrated
from core.errors import CalibrationError
from core.paths import DEMO_DIR
from core.types import FrameSetSource

log = logging.getLogger(__name__)


CALIBRATION_NAME = "calibration.toml"
SESSION_PREFIX = "session:"
LENGTH_TOLERANCE_FRAMES = 3  # videos of one session differing more than this are named in a warning


@dataclass
class Session:
    """The replay and one camera model per source (same order)."""

    replay: FrameSetSource
    cameras: list[Camera]

    @property
    def calibrated(self) -> bool:
        return rig_calibrated(self.cameras)


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
        config = load_room(room)
        if calibration is not None:
            config.calibration = Path(calibration)
        group, cameras = open_room(config, uncalibrated_mode)
        group.open()
        return Session(group, cameras)
    text = str(source) if source is not None else ""
    if _is_camera(text):  # one live camera (rtsp://, http://, usb:N): see capture.room.open_url
        group, cameras = open_url(text, Path(calibration) if calibration is not None else None, uncalibrated_mode)
        return Session(group, cameras)
    if text.startswith(SESSION_PREFIX):  # a recorded session: its own videos, timestamps and calibration
        path = Path(text[len(SESSION_PREFIX) :])
        sources: list[FrameSource] = list(recorded_sources(path))
    else:
        path = Path(source) if source is not None else DEMO_DIR
        sources = sources_from_path(path)
    if calibration is None and path.is_dir() and (path / CALIBRATION_NAME).is_file():
        calibration = path / CALIBRATION_NAME
    replay = SessionReplay(sources, realtime=realtime, loop=loop)
    replay.open()
    warn_uneven_lengths(text or str(path), sources)
    if calibration is None or uncalibrated_mode:
        cameras = [uncalibrated(s.name, s.image_size) for s in sources]
    else:
        try:
            cameras = match_calibration(Path(calibration), sources)
        except CalibrationError:
            replay.close()
            raise
    return Session(replay, cameras)


def warn_uneven_lengths(where: str, sources: list[FrameSource]) -> dict[str, int]:
    """Log a warning naming every camera and its frame count when the videos' lengths differ by
    more than a few frames (the replay ends with the shortest). Returns the counts known."""
    counts = {s.name: n for s in sources if isinstance(n := getattr(s, "frame_count", None), int) and n > 0}
    if len(counts) >= 2 and max(counts.values()) - min(counts.values()) > LENGTH_TOLERANCE_FRAMES:
        log.warning(
            "source %s: the videos differ in length (%s frames); the replay ends with the shortest, after %d frames",
            where, ", ".join(f"{name} {n}" for name, n in counts.items()), min(counts.values()),
        )  # fmt: skip
    return counts


def match_calibration(path: Path, sources: list[FrameSource]) -> list[Camera]:
    """The calibrated camera for each source (see :func:`match_cameras`)."""
    return match_cameras(path, [(s.name, (s.image_size[0], s.image_size[1])) for s in sources])


def _is_camera(text: str) -> bool:
    """A camera URL or device rather than a file: ``scheme://...`` or ``usb:N`` (not ``session:``)."""
    from core.urls import is_url, scheme_of

    return (is_url(text) and scheme_of(text) != "session") or scheme_of(text) == "usb"
