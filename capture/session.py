"""Open a source (video file, folder of per-camera videos) with its calibration."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from calibration.io import load_calibration
from capture.replay import SessionReplay
from capture.sources import FrameSource, sources_from_path
from core.camera import Camera, rig_calibrated, shifted_to_size, uncalibrated
from core.errors import CalibrationError
from core.paths import DEMO_DIR

log = logging.getLogger(__name__)


CALIBRATION_NAME = "calibration.toml"
SESSION_PREFIX = "session:"
SMALL_MISMATCH_PX = 16  # a calibration this close to the video's size is adjusted (with a warning)
SMALL_MISMATCH_FRACTION = 0.02
LENGTH_TOLERANCE_FRAMES = 3  # videos of one session differing more than this are named in a warning


@dataclass
class Session:
    """The replay and one camera model per source (same order)."""

    replay: SessionReplay
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
        from capture.room import load_room, open_room

        config = load_room(room)
        if calibration is not None:
            config.calibration = Path(calibration)
        group, cameras = open_room(config, uncalibrated_mode)
        group.open()
        return Session(group, cameras)  # type: ignore[arg-type]
    text = str(source) if source is not None else ""
    if _is_camera(text):  # one live camera (rtsp://, http://, usb:N): see capture.room.open_url
        from capture.room import open_url

        group, cameras = open_url(text, Path(calibration) if calibration is not None else None, uncalibrated_mode)
        return Session(group, cameras)  # type: ignore[arg-type]
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
    for cam in matched:
        if not cam.calibrated:
            raise CalibrationError(f"calibration file {path}: camera {cam.name!r} has no position (intrinsics only)")
    return [_fit_size(path, cam, name, size) for cam, (name, size) in zip(matched, views, strict=True)]


def _fit_size(path: Path, cam: Camera, source: str, size: tuple[int, int]) -> Camera:
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


def _ours(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # load_calibration reports it
    return "[cameras." not in text and "cam_id" not in text


def _is_camera(text: str) -> bool:
    """A camera URL or device rather than a file: ``scheme://...`` or ``usb:N`` (not ``session:``)."""
    from core.urls import is_url, scheme_of

    return (is_url(text) and scheme_of(text) != "session") or scheme_of(text) == "usb"
