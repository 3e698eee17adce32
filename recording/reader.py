"""Read recorded sessions back: per-camera frame sources with the original timestamps (replay
through the same pipeline, ``session:PATH``) and the results chunks. A session cut short by a
crash reads up to its last complete frame and chunk."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from core.errors import SourceError
from core.types import Frame

log = logging.getLogger(__name__)


def _rows(path: Path) -> list[tuple[int, int, float, int, int]]:
    """The complete lines of a camera's frame table (a crash may cut the last one)."""
    rows = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for line in reader:
            if len(line) != 5:
                break
            try:
                rows.append((int(line[0]), int(line[1]), float(line[2]), int(line[3]), int(line[4])))
            except ValueError:
                break
    return rows


class RecordedSource:
    """One camera of a recorded session, as a FrameSource (frames with their recorded timestamps)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self._video = folder / "videos" / f"{name}.mjpeg"
        table = folder / "videos" / f"{name}.csv"
        if not table.is_file():
            raise SourceError(f"recorded session {folder}: camera {name!r} has no frame table ({table.name})")
        if not self._video.is_file():
            raise SourceError(
                f"recorded session {folder}: camera {name!r} was recorded without video (privacy mode): nothing to replay"
            )
        size = self._video.stat().st_size
        self._rows = [r for r in _rows(table) if r[4] > 0 and r[3] + r[4] <= size]  # complete JPEGs only
        if not self._rows:
            raise SourceError(f"recorded session {folder}: camera {name!r} has no complete frames")
        self._position = 0
        times = np.array([r[2] for r in self._rows])
        steps = np.diff(times)
        self._fps = float(1.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else 30.0
        first = self._decode(self._rows[0])
        self._size = (first.shape[1], first.shape[0])

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def image_size(self) -> tuple[int, int]:
        return self._size

    @property
    def frame_count(self) -> int:
        return len(self._rows)

    def open(self) -> None:
        self._position = 0

    def read(self) -> Frame | None:
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return Frame(self.name, self._decode(row), row[2], row[1])

    def rewind(self) -> None:
        self._position = 0

    def close(self) -> None:
        pass

    def _decode(self, row: tuple[int, int, float, int, int]) -> np.ndarray:
        with self._video.open("rb") as handle:
            handle.seek(row[3])
            data = handle.read(row[4])
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"recorded session {self.folder}: camera {self.name!r} frame {row[1]} is damaged")
        return image


def read_metadata(folder: str | Path) -> dict[str, object]:
    folder = Path(folder)
    path = folder / "session.json"
    if not path.is_file():
        raise SourceError(f"recorded session {folder}: no session.json (not a recorded session)")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"recorded session {folder}: session.json is unreadable ({exc})") from exc


def recorded_sources(folder: str | Path) -> list[RecordedSource]:
    """A source per recorded camera, in the recorded order."""
    folder = Path(folder)
    meta = read_metadata(folder)
    names = [str(c["name"]) for c in meta.get("cameras", [])]  # type: ignore[union-attr, index]
    if not names:
        raise SourceError(f"recorded session {folder}: session.json lists no cameras")
    return [RecordedSource(folder, n) for n in names]


def load_results(folder: str | Path) -> dict[str, np.ndarray]:
    """All results chunks of a session concatenated (unreadable chunks are skipped and logged)."""
    folder = Path(folder)
    parts: list[dict[str, np.ndarray]] = []
    for path in sorted((folder / "results").glob("chunk_*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                parts.append({k: data[k] for k in data.files})
        except (OSError, ValueError) as exc:
            log.warning("recorded session %s: skipping unreadable %s (%s)", folder, path.name, exc)
    if not parts:
        return {}
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "camera_names"}
    out["camera_names"] = parts[0]["camera_names"]
    return out
