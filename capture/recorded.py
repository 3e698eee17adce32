"""Replay a recorded session: one frame source per camera with the original timestamps
(``--source session:PATH``), read from the session's videos and frame tables.

A session cut short by a crash or a full disk reads up to its last whole frame-set. Damage is
skipped, counted and reported, never fatal on its own: a frame-table line that cannot be parsed,
a line pointing past the end of the video, a JPEG that does not decode. Each
:class:`RecordedSource` has ``skipped`` (counts by kind) and logs one warning per camera naming the
file. Only a session with nothing usable left (no session.json, no frames for a camera) is an error.
The session's results are read by recording.reader.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from core.errors import SourceError
from core.formats import SESSION_FORMAT_VERSION
from core.types import Frame

log = logging.getLogger(__name__)

Row = tuple[int, int, float, int, int]  # set_index, frame_index, timestamp, offset, length
NO_VIDEO_HINT = "python -m recording keypoints {folder} --out FILE.npz exports its results"


class SessionError(SourceError):
    """A recorded session (folder, session.json, frame tables, results) is missing or unusable."""


def parse_table(path: Path) -> tuple[list[Row], list[int]]:
    """A camera's frame table: its rows and the numbers of the lines that could not be read (a
    crash may cut the last one; damage anywhere else is skipped too)."""
    rows: list[Row] = []
    bad: list[int] = []
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise SessionError(f"recorded session frame table {path}: unreadable ({exc.strerror or exc})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines[1:], start=2):
        row = _parse_row(line)
        if row is None:
            bad.append(number)
        else:
            rows.append(row)
    return rows, bad


def _parse_row(line: str) -> Row | None:
    parts = line.strip().split(",")
    if len(parts) != 5:
        return None
    try:
        row = (int(parts[0]), int(parts[1]), float(parts[2]), int(parts[3]), int(parts[4]))
    except ValueError:
        return None
    if not math.isfinite(row[2]) or row[3] < 0 or row[4] < 0:
        return None
    return row


def monotonic_rows(rows: list[Row]) -> tuple[list[Row], int]:
    """The rows with timestamps that never go back: where a timestamp drops (a looping source
    whose clock restarted), the rest is shifted to continue one median frame step later.
    Returns the rows and how many restarts were repaired."""
    times = np.array([r[2] for r in rows])
    steps = np.diff(times)
    forward = steps[steps > 0]
    step = float(np.median(forward)) if len(forward) else 1.0 / 30
    offset, resets, out = 0.0, 0, rows[:1]
    for previous, row in itertools.pairwise(rows):
        if row[2] < previous[2]:
            offset += previous[2] + step - row[2]
            resets += 1
        out.append((row[0], row[1], row[2] + offset, row[3], row[4]) if offset else row)
    return out, resets


class RecordedSource:
    """One camera of a recorded session, as a FrameSource (frames with their recorded timestamps).

    ``skipped``: {"bad_lines", "incomplete_frames", "damaged_frames"} counts for this camera."""

    def __init__(self, folder: Path, name: str, image_size: tuple[int, int] | None = None) -> None:
        self.folder, self.name = Path(folder), name
        self._video = self.folder / "videos" / f"{name}.mjpeg"
        table = self.folder / "videos" / f"{name}.csv"
        if not table.is_file():
            raise SessionError(f"recorded session {folder}: camera {name!r} has no frame table (videos/{table.name} missing)")
        if not self._video.is_file():
            raise SessionError(f"recorded session {folder}: camera {name!r} has no video (videos/{self._video.name} missing)")
        rows, bad_lines = parse_table(table)
        if not rows:
            unreadable = f" ({len(bad_lines)} unreadable line(s))" if bad_lines else ""
            raise SessionError(f"recorded session {folder}: camera {name!r}: videos/{table.name} lists no frames{unreadable}")
        size = self._video.stat().st_size
        self._rows = [r for r in rows if r[4] > 0 and r[3] + r[4] <= size]  # whole JPEGs only
        if not self._rows:
            raise SessionError(
                f"recorded session {folder}: camera {name!r}: videos/{self._video.name} holds none of the {len(rows)} "
                f"frame(s) that videos/{table.name} lists ({size} bytes: cut off or recorded without video)"
            )
        self.skipped = {"bad_lines": len(bad_lines), "incomplete_frames": len(rows) - len(self._rows), "damaged_frames": 0}
        self._damaged: set[int] = set()
        self._reported = False
        if bad_lines:
            log.warning("recorded session %s: videos/%s: skipped %d unreadable line(s) (line %s)", folder, table.name,
                        len(bad_lines), ", ".join(map(str, bad_lines[:5])) + (" ..." if len(bad_lines) > 5 else ""))  # fmt: skip
        self._rows, self.timestamp_resets = monotonic_rows(self._rows)
        if self.timestamp_resets:
            log.warning("recorded session %s: videos/%s: the timestamps restart %d time(s) (a looping source recorded "
                        "by an older version); replaying them as one continuous clock", folder, table.name,
                        self.timestamp_resets)  # fmt: skip
        self._size: tuple[int, int] | None = None  # the first whole frame's (the metadata's may differ)
        self._position = 0
        first = self._first_image()
        self._size = (first.shape[1], first.shape[0])
        times = np.array([r[2] for r in self._rows])
        steps = np.diff(times)
        self._fps = float(1.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else 30.0

    def _first_image(self) -> np.ndarray:
        with self._video.open("rb") as handle:
            for i, row in enumerate(self._rows):
                image = self._decode(handle, row, i)
                if image is not None:
                    return image
        raise SessionError(
            f"recorded session {self.folder}: camera {self.name!r}: none of the {len(self._rows)} frame(s) in "
            f"videos/{self._video.name} can be decoded (all damaged or cut off)"
        )

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def image_size(self) -> tuple[int, int]:
        assert self._size is not None
        return self._size

    @property
    def frame_count(self) -> int:
        return len(self._rows)

    def open(self) -> None:
        self._position = 0

    def read(self) -> Frame | None:
        """The next frame that decodes (damaged ones are skipped and counted), None at the end."""
        with self._video.open("rb") as handle:
            while self._position < len(self._rows):
                i, row = self._position, self._rows[self._position]
                self._position += 1
                image = self._decode(handle, row, i)
                if image is not None:
                    return Frame(self.name, image, row[2], row[1])
        return None

    def skip_until(self, t: float, deadline: float | None = None) -> int:
        """Skip the frames recorded before time ``t`` without decoding them (real-time replay);
        returns how many."""
        start = self._position
        while self._position < len(self._rows) and self._rows[self._position][2] < t:
            self._position += 1
        return self._position - start

    def rewind(self) -> None:
        self._position = 0

    def close(self) -> None:
        """Log what was skipped (once)."""
        if self._reported or not any(self.skipped.values()):
            return
        self._reported = True
        log.warning("recorded session %s: camera %r (videos/%s): %s", self.folder, self.name, self._video.name,
                    describe(self.skipped))  # fmt: skip

    def _decode(self, handle: BinaryIO, row: Row, i: int) -> np.ndarray | None:
        if i in self._damaged:
            return None
        handle.seek(row[3])
        data = handle.read(row[4])
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if len(data) == row[4] else None
        if image is not None and (self._size is None or (image.shape[1], image.shape[0]) == tuple(self._size)):
            return image
        self._damaged.add(i)
        self.skipped["damaged_frames"] = len(self._damaged)
        if len(self._damaged) == 1:
            log.warning("recorded session %s: camera %r: frame %d in videos/%s is damaged; skipping it", self.folder,
                        self.name, row[1], self._video.name)  # fmt: skip
        return None


def describe(counts: dict[str, int]) -> str:
    """'skipped 2 bad line(s), 1 damaged frame(s)'; 'nothing skipped' when all are zero."""
    parts = [f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n]
    return "skipped " + ", ".join(parts) if parts else "nothing skipped"


def skipped_counts(sources: list[object]) -> dict[str, dict[str, int]]:
    """What each recorded camera of a replay skipped, by camera name (other sources: none)."""
    return {s.name: dict(s.skipped) for s in sources if isinstance(s, RecordedSource)}


# --- session.json -----------------------------------------------------------------------------------
def read_metadata(folder: str | Path) -> dict[str, object]:
    """session.json, checked: an object with format_version and a non-empty list of cameras, each
    with a unique string name (and, when given, an image_size of two positive integers)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionError(f"recorded session {folder}: folder not found")
    path = folder / "session.json"
    if not path.is_file():
        raise SessionError(f"recorded session {folder}: no session.json (not a recorded session)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SessionError(f"recorded session file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise SessionError(f"recorded session file {path}: unreadable ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise SessionError(f"recorded session file {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(meta, dict):
        raise SessionError(f"recorded session file {path}: holds a {_kind(meta)}, expected an object with cameras")
    _check_version(path, meta)
    _check_cameras(path, meta.get("cameras", _MISSING))
    if "store_video" in meta and not isinstance(meta["store_video"], bool):
        kind = _kind(meta["store_video"])
        raise SessionError(f"recorded session file {path}: field store_video is a {kind}, expected true or false")
    return meta


_MISSING = object()


def _kind(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _check_version(path: Path, meta: dict[str, object]) -> None:
    version = meta.get("format_version", _MISSING)
    if version is _MISSING:
        raise SessionError(f"recorded session file {path}: field format_version missing")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SessionError(f"recorded session file {path}: field format_version is {version!r}, expected a whole number")
    if version > SESSION_FORMAT_VERSION:
        raise SessionError(
            f"recorded session file {path}: field format_version is {version}; this version reads up to {SESSION_FORMAT_VERSION}"
        )


def _check_cameras(path: Path, cameras: object) -> None:
    if cameras is _MISSING:
        raise SessionError(f"recorded session file {path}: field cameras missing")
    if not isinstance(cameras, list):
        raise SessionError(f"recorded session file {path}: field cameras is a {_kind(cameras)}, expected a list")
    if not cameras:
        raise SessionError(f"recorded session file {path}: field cameras is empty (no camera was recorded)")
    seen: set[str] = set()
    for i, cam in enumerate(cameras):
        where = f"recorded session file {path}: field cameras[{i}]"
        if not isinstance(cam, dict):
            raise SessionError(f"{where} is a {_kind(cam)}, expected an object with a name")
        name = cam.get("name", _MISSING)
        if name is _MISSING:
            raise SessionError(f"{where}.name missing")
        if not isinstance(name, str) or not name.strip():
            raise SessionError(f"{where}.name is {name!r}, expected a non-empty string")
        if not re.fullmatch(r"[^/\\\x00]+", name) or name in (".", ".."):
            raise SessionError(f"{where}.name {name!r} is not a usable file name")
        if name in seen:
            raise SessionError(f"{where}.name {name!r} is used twice")
        seen.add(name)
        size = cam.get("image_size")
        if size is not None and not _is_size(size):
            raise SessionError(f"{where}.image_size is {size!r}, expected [width, height] in pixels")


def _is_size(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in value)
    )


def camera_specs(meta: dict[str, object]) -> list[tuple[str, tuple[int, int] | None]]:
    """(name, image size or None) per recorded camera, in the recorded order."""
    cameras = meta["cameras"]
    assert isinstance(cameras, list), "read_metadata checks the cameras"
    return [(str(c["name"]), (int(c["image_size"][0]), int(c["image_size"][1])) if c.get("image_size") else None)
            for c in cameras]  # fmt: skip


def recorded_sources(folder: str | Path) -> list[RecordedSource]:
    """A source per recorded camera, in the recorded order (a session without video cannot be
    replayed: its results can still be exported)."""
    folder = Path(folder)
    meta = read_metadata(folder)
    privacy = meta.get("privacy")
    if meta.get("store_video") is False:
        by_privacy = isinstance(privacy, dict) and privacy.get("video") == "results"
        why = 'the privacy setting recording = "results"' if by_privacy else "--no-video"
        raise SessionError(
            f"recorded session {folder}: recorded without video ({why}), so there are no frames to replay; "
            + NO_VIDEO_HINT.format(folder=folder)
        )
    tables = [folder / "videos" / f"{name}.csv" for name, _ in camera_specs(meta)]
    if meta.get("video") == "events" and all(t.is_file() and not parse_table(t)[0] for t in tables):
        raise SessionError(
            f"recorded session {folder}: video was kept only around events (privacy setting recording = "
            '"events") and no event was marked, so there are no frames to replay; ' + NO_VIDEO_HINT.format(folder=folder)
        )
    return [RecordedSource(folder, name, size) for name, size in camera_specs(meta)]
