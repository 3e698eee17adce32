"""Room configuration: which cameras a room has and its calibration, in a small TOML file.

    [room]
    name = "Room 12"
    calibration = "room12_calibration.toml"   # optional, relative to this file

    [[camera]]
    name = "door"
    source = "usb:0"                           # usb:N, rtsp://..., http://..., or a video file
    resolution = [1280, 720]                   # what the camera delivers (checked when it connects)
    fps = 30

Passwords may appear in ``source``; they are never logged or shown (see capture.live.redact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from calibration.camera import Camera, uncalibrated
from capture.live import LiveCamera, redact
from capture.sync import CameraGroup
from core.errors import AppError
from core.tomlfile import read_toml


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


def load_room(path: str | Path) -> Room:
    path = Path(path)
    data = read_toml(path, "room file", RoomError)
    room = data.get("room", {})
    entries = data.get("camera", [])
    if not isinstance(entries, list) or not entries:
        raise RoomError(f"room file {path}: no [[camera]] entries")
    cameras = []
    for i, entry in enumerate(entries):
        where = f"room file {path}: camera #{i + 1}"
        for key in ("name", "source", "resolution"):
            if key not in entry:
                raise RoomError(f"{where} is missing field {key!r}")
        res = entry["resolution"]
        if not (isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) and v > 0 for v in res)):
            raise RoomError(f"{where} ({entry['name']}): resolution must be [width, height] in pixels")
        cameras.append(CameraEntry(str(entry["name"]), str(entry["source"]), (res[0], res[1]), float(entry.get("fps", 30.0))))
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise RoomError(f"room file {path}: duplicate camera names {names}")
    calibration = room.get("calibration")
    calib_path = (path.parent / calibration) if calibration else None
    return Room(str(room.get("name", path.stem)), cameras, calib_path, path)


def save_room(path: str | Path, room: Room) -> None:
    lines = ["[room]", f"name = {_q(room.name)}"]
    if room.calibration is not None:
        lines.append(f"calibration = {_q(str(room.calibration))}")
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
    """The room's live camera group and its camera models (calibrated when the room has a
    calibration file that matches the cameras, unless ``uncalibrated_mode``)."""
    group = CameraGroup([LiveCamera(c.name, _resolve(room, c.source)) for c in room.cameras])
    views = [(c.name, c.resolution) for c in room.cameras]
    if room.calibration is not None and not uncalibrated_mode:
        from capture.session import match_cameras

        cameras = match_cameras(room.calibration, views)
    else:
        cameras = [uncalibrated(n, size) for n, size in views]
    return group, cameras


def _resolve(room: Room, source: str) -> str:
    """Video files are relative to the room file."""
    if "://" in source or source.startswith("usb:") or room.path is None:
        return source
    candidate = room.path.parent / source
    return str(candidate) if candidate.exists() else source
