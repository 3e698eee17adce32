"""Frame sources: one small interface (open / read / close), a registry, and a fake.

A source yields :class:`core.types.Frame` objects with a monotonic timestamp and its own frame
index. ``read`` returns None at the end of the stream. A source that can skip frames cheaply
(without decoding them to images) also has ``skip_until(t, deadline) -> int``; real-time replay
uses it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.errors import SourceError
from core.types import Frame
from core.urls import mask_userinfo

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm")


class FrameSource(Protocol):
    """What every camera source implements."""

    name: str

    @property
    def fps(self) -> float: ...

    @property
    def image_size(self) -> tuple[int, int]: ...

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def rewind(self) -> None: ...

    def close(self) -> None: ...


class VideoFileSource:
    """Frames of a video file; timestamps are ``time_offset + index / fps`` (seconds; the offset
    is when this camera's recording started relative to the others, 0 when unknown)."""

    def __init__(self, path: str | Path, name: str | None = None, time_offset: float = 0.0) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.time_offset = time_offset
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._fps = 0.0
        self._size = (0, 0)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def image_size(self) -> tuple[int, int]:
        return self._size

    @property
    def frame_count(self) -> int:
        return int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self._cap is not None else 0

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"camera {self.name!r}: video file {self.path} not found")
        if self.path.stat().st_size == 0:
            raise SourceError(f"camera {self.name!r}: video file {self.path} is empty (0 bytes)")
        # FFmpeg's own log lines would duplicate the clear error raised below.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"camera {self.name!r}: cannot open video file {self.path} (not a video or unsupported codec)")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"camera {self.name!r}: video file {self.path} has no frames")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
        self._size = (first.shape[1], first.shape[0])
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._cap = cap
        self._index = 0

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"camera {self.name!r}: source is not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        frame = Frame(self.name, image, self.time_offset + self._index / self._fps, self._index)
        self._index += 1
        return frame

    def skip_until(self, t: float, deadline: float | None = None) -> int:
        """Skip the frames before time ``t`` without converting them to images (``grab``), until
        ``deadline`` (``time.perf_counter``) at most; returns how many were skipped."""
        if self._cap is None:
            raise SourceError(f"camera {self.name!r}: source is not open")
        count = 0
        while (
            self.time_offset + self._index / self._fps < t
            and (deadline is None or time.perf_counter() < deadline)
            and self._cap.grab()
        ):
            self._index += 1
            count += 1
        return count

    def rewind(self) -> None:
        if self._cap is not None:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._index = 0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SyntheticSource:
    """A fake camera for tests: ``frames`` images of a given size, drawn by ``painter``.

    painter(index) -> image ``[H, W, 3]`` uint8; by default a grey image with the index
    written on it. Timestamps are ``index / fps`` plus a fixed ``offset`` (seconds).
    """

    def __init__(
        self,
        name: str,
        size: tuple[int, int] = (640, 480),
        frames: int = 10,
        fps: float = 30.0,
        offset: float = 0.0,
        painter: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self._size, self._frames, self._fps, self._offset = size, frames, fps, offset
        self._painter = painter or self._default_painter
        self._index = 0

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def image_size(self) -> tuple[int, int]:
        return self._size

    def open(self) -> None:
        self._index = 0

    def read(self) -> Frame | None:
        if self._index >= self._frames:
            return None
        frame = Frame(self.name, self._painter(self._index), self._offset + self._index / self._fps, self._index)
        self._index += 1
        return frame

    def skip_until(self, t: float, deadline: float | None = None) -> int:
        """Skip the frames before time ``t`` without painting them; returns how many."""
        start = self._index
        while self._index < self._frames and self._offset + self._index / self._fps < t:
            self._index += 1
        return self._index - start

    def rewind(self) -> None:
        self._index = 0

    def close(self) -> None:
        pass

    def _default_painter(self, index: int) -> np.ndarray:
        w, h = self._size
        image = np.full((h, w, 3), 80, np.uint8)
        cv2.putText(image, f"{self.name} #{index}", (10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        return image


def natural_key(text: str) -> list[object]:
    """Sort key that orders ``cam_2`` before ``cam_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def sources_from_path(path: str | Path) -> list[FrameSource]:
    """Sources for a video file or a folder of per-camera videos (natural name order)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise SourceError(
                f"source {mask_userinfo(str(path))}: unknown source type {path.suffix!r} "
                f"(expected a video file: {', '.join(VIDEO_SUFFIXES)})"
            )
        return [VideoFileSource(path)]
    if path.is_dir():
        videos = sorted((p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES), key=lambda p: natural_key(p.name))
        if not videos:
            # A session folder keeps its videos in a "videos" sub-folder.
            if (path / "videos").is_dir():
                return sources_from_path(path / "videos")
            raise SourceError(f"source {path}: folder contains no video files ({', '.join(VIDEO_SUFFIXES)})")
        return [VideoFileSource(p) for p in videos]
    raise SourceError(f"source {mask_userinfo(str(path))}: no such file or folder")
