"""Room configuration: which cameras a room has and its calibration, in a small TOML file.

    format_version = 1                         # optional
    [room]
    name = "Room 12"
    calibration = "room12_calibration.toml"   # optional, relative to this file
    connect_timeout = 15                       # optional, seconds: give up when no camera delivers

    [[camera]]
    name = "door"
    source = "usb:0"                           # usb:N, rtsp://..., http://..., a video file or an image folder
    resolution = [1280, 720]                   # what the camera delivers (a camera that delivers another size fails)
    fps = 30

    [streaming]                                # optional: live bodies to other programs (recording.streaming reads it)

Everything is checked when the file is loaded, before any camera is opened: one RoomError naming
the file, the camera and the field (the calibration file's existence when the room is opened with
it, still before any camera starts: ``--calibrate room.toml`` makes it). Passwords may appear in
``source``; they are never logged or shown (see core.urls).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibration.matching import match_cameras
from capture.live import ImageStream, LiveCamera, redact, source_problem
from capture.playback import StandInPlayer
from capture.sync import CONNECT_TIMEOUT_S, CameraGroup
from core.camera import Camera, uncalibrated
from core.errors import AppError, SourceError
from core.tomlfile import read_toml
from core.urls import is_url, scheme_of

FORMAT_VERSION = 1
MAX_SIDE = 16384  # pixels
MAX_FPS = 1000.0
ROOM_FIELDS = ("name", "calibration", "connect_timeout")
CAMERA_FIELDS = ("name", "source", "resolution", "fps")


class RoomError(AppError):
    """A room file is missing or wrong."""


@dataclass
class CameraEntry:
    name: str
    source: str
    resolution: tuple[int, int]
    fps: float = 30.0


@dataclass
class Room:
    name: str
    cameras: list[CameraEntry]
    calibration: Path | None = None
    path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)
    connect_timeout: float = CONNECT_TIMEOUT_S


def load_room(path: str | Path) -> Room:
    """The room file at ``path``, checked whole (RoomError naming the file, camera and field)."""
    path = Path(path)
    data = read_toml(path, "room file", RoomError)
    _check_keys(data, ("format_version", "room", "camera", "monitoring", "privacy", "streaming"), f"room file {path}")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise RoomError(f"room file {path}: field 'format_version' is {version!r}; this version reads {FORMAT_VERSION}")
    room = data.get("room", {})
    if not isinstance(room, dict):
        raise RoomError(f"room file {path}: 'room' must be a table ([room]), not {_kind(room)}")
    _check_keys(room, ROOM_FIELDS, f"room file {path}: [room]")
    cameras = _cameras(path, data.get("camera"))
    calibration = _calibration(path, room.get("calibration"))
    timeout = _number(room.get("connect_timeout", CONNECT_TIMEOUT_S), f"room file {path}: field 'room.connect_timeout'", 3600.0)
    name = room.get("name", path.stem)
    if not isinstance(name, str):
        raise RoomError(f"room file {path}: field 'room.name' must be text, not {_kind(name)}")
    return Room(name, cameras, calibration, path, connect_timeout=timeout)


def _cameras(path: Path, entries: object) -> list[CameraEntry]:
    if entries is None or entries == []:
        raise RoomError(f"room file {path}: no cameras (add [[camera]] tables with name, source and resolution)")
    if not isinstance(entries, list):
        raise RoomError(f"room file {path}: 'camera' must be a list of [[camera]] tables, not {_kind(entries)}")
    cameras: list[CameraEntry] = []
    for i, entry in enumerate(entries):
        cameras.append(_camera(path, i + 1, entry, [c.name for c in cameras]))
    return cameras


def _camera(path: Path, number: int, entry: object, taken: list[str]) -> CameraEntry:
    where = f"room file {path}: camera #{number}"
    if not isinstance(entry, dict):
        raise RoomError(f"{where} must be a table ([[camera]] with name, source, resolution), not {_kind(entry)}")
    for key in ("name", "source", "resolution"):
        if key not in entry:
            raise RoomError(f"{where}: missing field {key!r}")
    name = entry["name"]
    if not isinstance(name, str) or not name.strip():
        raise RoomError(f"{where}: field 'name' must be non-empty text, not {_kind(name)}")
    name = name.strip()
    where = f"room file {path}: camera {name!r} (#{number})"
    if name in taken:
        raise RoomError(f"{where}: field 'name': duplicate camera name (also camera #{taken.index(name) + 1})")
    _check_keys(entry, CAMERA_FIELDS, where)
    source = entry["source"]
    if not isinstance(source, str) or not source.strip():
        raise RoomError(f"{where}: field 'source' must be non-empty text (usb:N, rtsp://, http://, a file), not {_kind(source)}")
    source = source.strip()
    problem = _source_problem(path, source)
    if problem is not None:
        raise RoomError(f"{where}: field 'source' {redact(source)}: {problem}")
    fps = _number(entry.get("fps", 30.0), f"{where}: field 'fps'", MAX_FPS)
    return CameraEntry(name, source, _resolution(entry["resolution"], where), fps)


def _resolution(value: object, where: str) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2 and all(_pixels(v) for v in value):
        return value[0], value[1]
    raise RoomError(f"{where}: field 'resolution' must be [width, height] in pixels (1 to {MAX_SIDE}), not {value!r}"[:300])


def _pixels(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIDE


def _number(value: object, where: str, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RoomError(f"{where} must be a number, not {_kind(value)} {value!r}"[:300])
    if not math.isfinite(value) or not 0 < value <= most:
        raise RoomError(f"{where} must be more than 0 and at most {most:g}, not {value!r}")
    return float(value)


def _calibration(path: Path, value: object) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RoomError(f"room file {path}: field 'room.calibration' must be a file name, not {_kind(value)}")
    return path.parent / value.strip()  # it may not exist yet: --calibrate makes it (open_room checks it)


def _source_problem(path: Path, source: str) -> str | None:
    from capture.playback import IMAGE_SUFFIXES
    from capture.sources import VIDEO_SUFFIXES

    if is_device_or_url(source):
        return source_problem(source)
    target = _resolve_path(path, source)
    if not target.exists():
        return "no such file or folder (paths are relative to the room file)"
    if target.is_dir() and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in target.iterdir()):
        return f"folder has no images ({', '.join(IMAGE_SUFFIXES)})"
    if target.is_file() and target.suffix.lower() not in VIDEO_SUFFIXES:
        return f"not a video file ({', '.join(VIDEO_SUFFIXES)}), nor usb:N, rtsp:// or http://"
    return None


def _check_keys(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = [k for k in table if k not in known]
    if unknown:
        raise RoomError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(known)})")


def _kind(value: object) -> str:
    return {dict: "a table", list: "a list", str: "text", bool: "true/false"}.get(type(value), type(value).__name__)


def save_room(path: str | Path, room: Room) -> None:
    lines = [f"format_version = {FORMAT_VERSION}", "", "[room]", f"name = {_q(room.name)}"]
    if room.calibration is not None:
        lines.append(f"calibration = {_q(str(room.calibration))}")
    if room.connect_timeout != CONNECT_TIMEOUT_S:
        lines.append(f"connect_timeout = {room.connect_timeout!r}")
    for cam in room.cameras:
        lines += ["", "[[camera]]", f"name = {_q(cam.name)}", f"source = {_q(cam.source)}",
                  f"resolution = [{cam.resolution[0]}, {cam.resolution[1]}]", f"fps = {cam.fps!r}"]  # fmt: skip
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe(room: Room) -> list[str]:
    """One safe line per camera (passwords redacted)."""
    return [f"{c.name}: {redact(c.source)} {c.resolution[0]}x{c.resolution[1]} @ {c.fps:g} fps" for c in room.cameras]


def open_room(room: Room, uncalibrated_mode: bool = False) -> tuple[CameraGroup, list[Camera]]:
    """The room's live camera group (not started) and its camera models (calibrated when the room
    has a calibration file that matches the cameras, unless ``uncalibrated_mode``). Video files
    standing in for cameras play together, in step (capture.playback.StandInPlayer)."""
    sources = {c.name: _resolve(room, c.source) for c in room.cameras}
    files = {name: url for name, url in sources.items() if Path(url).is_file() and not is_device_or_url(url)}
    player = StandInPlayer(files)
    cameras = []
    for c in room.cameras:
        if c.name in files:
            opener = functools.partial(_play, player=player, name=c.name)
        else:
            opener = functools.partial(_open, fps=c.fps)
        cameras.append(LiveCamera(c.name, sources[c.name], opener=opener, size=c.resolution))
    label = f"room file {room.path}" if room.path is not None else f"room {room.name!r}"
    group = CameraGroup(cameras, connect_timeout_s=room.connect_timeout, label=label)
    views = [(c.name, c.resolution) for c in room.cameras]
    if room.calibration is not None and not uncalibrated_mode:
        if not room.calibration.is_file():
            raise RoomError(f"{label}: field 'room.calibration': calibration file {room.calibration} not found")
        models = match_cameras(room.calibration, views)
    else:
        models = [uncalibrated(n, size) for n, size in views]
    return group, models


def open_url(url: str, calibration: Path | None = None, uncalibrated_mode: bool = False) -> tuple[CameraGroup, list[Camera]]:
    """``--source URL``: one live camera (started), its size learnt from its first frame (SourceError,
    password redacted, when the URL is wrong or nothing comes within the connect timeout)."""
    url = url.strip()
    problem = source_problem(url)
    if problem is not None:
        raise SourceError(f"source {redact(url)}: {problem}")
    group = CameraGroup([LiveCamera("camera", url)], label=f"source {redact(url)}")
    try:
        size = _first_size(group)
        views = [("camera", size)]
        if calibration is not None and not uncalibrated_mode:
            return group, match_cameras(calibration, views)
        return group, [uncalibrated("camera", size)]
    except BaseException:
        group.close()
        raise


def _first_size(group: CameraGroup) -> tuple[int, int]:
    import time

    group.open()
    camera = group.cameras[0]
    while camera.image_size is None:
        group.check()  # SourceError after the connect timeout, or when the camera failed
        time.sleep(0.05)
    return camera.image_size


def _open(url: str, fps: float) -> ImageStream:
    from capture.live import open_stream

    return open_stream(url, fps=fps)


def _play(url: str, player: StandInPlayer, name: str) -> ImageStream:
    return player.stream(name)


def is_device_or_url(source: str) -> bool:
    """A camera URL (``scheme://``) or a device/session name (``usb:N``, ``session:DIR``), not a file path."""
    return is_url(source) or scheme_of(source) in ("usb", "session")


def _resolve_path(path: Path, source: str) -> Path:
    candidate = path.parent / source
    return candidate if candidate.exists() else Path(source)


def _resolve(room: Room, source: str) -> str:
    """Files and folders are relative to the room file (or, failing that, to the working folder)."""
    if is_device_or_url(source) or room.path is None:
        return source
    return str(_resolve_path(room.path, source))
