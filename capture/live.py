"""Live cameras: one reader thread per camera that timestamps frames at grab time, keeps only
the newest few, and reconnects by itself with capped exponential backoff.

Camera URLs: ``usb:0`` (a local device), ``rtsp://...``, ``http://...`` (MJPEG over HTTP, read
by our own multipart parser so that timeouts and reconnects are ours), a video file or an image
folder (played at their frame rate, looping; a room's video files play together, in step: see
capture.playback; for trying a room without cameras). Passwords and tokens in URLs are never logged
or shown: :func:`redact` (core.urls) for a URL, :func:`core.urls.scrub` for any message about one.
A reader thread never dies silently: whatever goes wrong ends in a state (FAILED, with the reason).
"""

from __future__ import annotations

import enum
import http.client
import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from capture.playback import ImageFolderStream, PlayerStream, VideoFileStream
from core.errors import SourceError
from core.types import Frame
from core.urls import is_url, redact, scheme_of, scrub, url_problem

__all__ = ["CameraHealth", "CameraState", "LiveCamera", "open_stream", "redact", "source_kind"]

log = logging.getLogger(__name__)


class CameraState(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class CameraHealth:
    """What the app shows per camera: state, measured fps, frames dropped (overwritten before
    anyone took them), reconnect attempts, the last error (passwords redacted)."""

    name: str
    state: CameraState
    fps: float
    frames: int
    dropped: int
    reconnects: int
    error: str | None
    source: str = ""  # the camera URL, password redacted


class MjpegStream:
    """A minimal MJPEG-over-HTTP reader (multipart/x-mixed-replace): ``read()`` -> BGR image or
    None when the stream ended; raises OSError on network errors (timeouts included)."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        problem = url_problem(url, ("http",))
        if problem is not None:
            raise SourceError(f"camera URL {redact(url)}: {problem}")
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {}
        if parts.username is not None:
            import base64

            user, password = unquote(parts.username), unquote(parts.password or "")
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        try:
            self._conn.request("GET", path, headers=headers)
            self._response = self._conn.getresponse()
        except http.client.HTTPException as exc:  # not an HTTP server (or a broken one): like a network error
            self._conn.close()
            raise OSError(f"not an HTTP camera ({type(exc).__name__})") from None
        if self._response.status != 200:
            status = self._response.status
            self._conn.close()
            raise OSError(f"HTTP {status}")
        self._buffer = b""

    def read(self) -> np.ndarray | None:
        while True:
            start = self._buffer.find(b"\xff\xd8")
            end = self._buffer.find(b"\xff\xd9", start + 2) if start >= 0 else -1
            if start >= 0 and end >= 0:
                jpeg, self._buffer = self._buffer[start : end + 2], self._buffer[end + 2 :]
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                if image is not None:
                    return image
                continue
            try:
                chunk = self._response.read1(65536)
            except http.client.HTTPException as exc:
                raise OSError(f"broken HTTP stream ({type(exc).__name__})") from None
            if not chunk:
                return None
            self._buffer = (self._buffer[start:] if start >= 0 else self._buffer[-1:]) + chunk

    def release(self) -> None:
        self._conn.close()


class _CaptureStream:
    """cv2.VideoCapture (a USB device, an RTSP URL) behind the same read()/release() as MjpegStream."""

    def __init__(self, target: str | int) -> None:
        # FFmpeg's own log lines may quote the URL (and its password); our states say what went wrong.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            raise OSError("cannot open")

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        return image if ok else None

    def release(self) -> None:
        self._cap.release()


@dataclass(frozen=True)
class SourceKind:
    """A kind of camera source and what it can do."""

    name: str
    example: str
    live: bool  # frames arrive in real time from a device (else a file played at its rate)
    network: bool  # may drop out and come back: reconnected with backoff
    seekable: bool  # can start again from the beginning


SOURCE_KINDS: dict[str, SourceKind] = {
    "usb": SourceKind("usb", "usb:0", live=True, network=False, seekable=False),
    "rtsp": SourceKind("rtsp", "rtsp://user:password@host:554/stream", live=True, network=True, seekable=False),
    "http": SourceKind("http", "http://host/video.mjpg", live=True, network=True, seekable=False),
    "video": SourceKind("video", "recordings/cam01.mp4", live=False, network=False, seekable=True),
    "images": SourceKind("images", "frames/cam01/", live=False, network=False, seekable=True),
    "session": SourceKind("session", "session:recordings/2026-11-22_0930", live=False, network=False, seekable=True),
}


def source_kind(url: str) -> SourceKind:
    """The kind of a camera URL (SourceError for an unknown scheme or a missing file)."""
    kind = _kind(url)
    if isinstance(kind, str):
        raise SourceError(f"camera URL {redact(url)}: {kind}")
    return kind


def _kind(url: str) -> SourceKind | str:
    """The kind of a camera URL, or what is wrong with it."""
    scheme = scheme_of(url)
    if scheme in ("usb", "session"):
        return SOURCE_KINDS[scheme]
    if scheme in ("rtsp", "http") and is_url(url):
        return SOURCE_KINDS[scheme]
    path = Path(url)
    if path.is_dir():
        return SOURCE_KINDS["images"]
    if path.is_file():
        return SOURCE_KINDS["video"]
    if scheme is not None and is_url(url):
        return f"unknown scheme {scheme!r} (known: usb:N, rtsp://, http://, a file)"
    return f"unknown kind or missing file (e.g. {', '.join(k.example for k in SOURCE_KINDS.values())})"


def source_problem(url: str) -> str | None:
    """What is wrong with a camera URL, found without opening it (one phrase, secrets redacted)."""
    kind = _kind(url)
    if isinstance(kind, str):
        return kind
    if kind.name == "session":
        return "a recorded session is replayed with --source session:DIR, not as one camera"
    if kind.name == "usb":
        number = url.strip()[4:]
        return None if number.isdigit() else f"usb: needs a device number, e.g. usb:0 (got {number!r})"
    if kind.network:
        return url_problem(url)
    return None


class ImageStream(Protocol):
    """What a LiveCamera reads: ``read`` gives the next image, None when the stream ended, and
    raises on network or decoder errors; ``release`` closes the stream."""

    def read(self) -> np.ndarray | None: ...

    def release(self) -> None: ...


Stream = MjpegStream | _CaptureStream | VideoFileStream | ImageFolderStream | PlayerStream


def open_stream(url: str, timeout: float = 2.0, fps: float | None = None) -> Stream:
    """Open a camera URL (see the module docstring); OSError when it cannot be opened now,
    SourceError when it never will. ``fps``: the rate an image folder plays at (a video plays at
    its own)."""
    problem = source_problem(url)
    if problem is not None:
        raise SourceError(f"camera URL {redact(url)}: {problem}")
    kind = source_kind(url)
    if kind.name == "usb":
        return _CaptureStream(int(url.strip()[4:]))
    if kind.name == "http":
        return MjpegStream(url, timeout)
    if kind.name == "rtsp":
        return _CaptureStream(url)
    if kind.name == "images":
        return ImageFolderStream(Path(url), fps or 10.0)
    return VideoFileStream(url)


class LiveCamera:
    """One camera with its reader thread. ``latest()`` gives the newest frames; states are
    published to subscribers (callables taking a CameraHealth) whenever they change.

    stall_s: no frame for this long while connected -> STALLED, then the stream is reopened.
    backoff: first retry delay, doubled after each failure up to ``max_backoff``.
    give_up: stop retrying after this many failed attempts in a row (None = never).
    size: the (width, height) the camera must deliver (the room file's ``resolution``); another
    size fails the camera, since its calibration and overlays would be wrong. None = any.
    """

    def __init__(
        self,
        name: str,
        url: str,
        buffer: int = 4,
        stall_s: float = 2.0,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        give_up: int | None = None,
        opener: Callable[[str], ImageStream] | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.name, self.url, self.size = name, url, size
        self.stall_s, self.backoff, self.max_backoff, self.give_up = stall_s, backoff, max_backoff, give_up
        self._opener = opener or open_stream
        self._frames: deque[Frame] = deque(maxlen=buffer)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribers: list[Callable[[CameraHealth], None]] = []
        self.state = CameraState.STOPPED
        self.error: str | None = None
        self.frames = self.dropped = self.reconnects = 0
        self.image_size: tuple[int, int] | None = None
        self._times: deque[float] = deque(maxlen=30)
        self._index = 0

    @property
    def safe_url(self) -> str:
        return redact(self.url)

    def subscribe(self, callback: Callable[[CameraHealth], None]) -> None:
        self._subscribers.append(callback)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state(CameraState.STOPPED)

    def latest(self) -> list[Frame]:
        """The buffered frames, oldest first (at most ``buffer``)."""
        with self._lock:
            return list(self._frames)

    def take(self, frame: Frame) -> None:
        """Mark ``frame`` (and everything older) as used."""
        with self._lock:
            while self._frames and self._frames[0].timestamp <= frame.timestamp:
                self._frames.popleft()

    @property
    def fps(self) -> float:
        times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def health(self) -> CameraHealth:
        return CameraHealth(
            self.name, self.state, round(self.fps, 1), self.frames, self.dropped, self.reconnects, self.error, self.safe_url
        )

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        if error is not None:
            self.error = scrub(error, self.url)
        if state == self.state and error is None:
            return
        self.state = state
        log.info("camera %s (%s): %s%s", self.name, self.safe_url, state.value, f" ({self.error})" if error else "")
        for callback in list(self._subscribers):
            try:
                callback(self.health())
            except Exception:  # a subscriber's bug must not stop the camera
                log.exception("camera %s: state subscriber failed", self.name)

    def _run(self) -> None:
        try:
            self._connect_and_read()
        except SourceError as exc:  # what the camera delivers can never work (a wrong size)
            self._set_state(CameraState.FAILED, str(exc))
        except Exception as exc:  # a bug or a library's surprise: the camera says so instead of a dead thread
            detail = scrub("".join(traceback.format_exception(exc)), self.url)
            log.debug("camera %s: reader failed:\n%s", self.name, detail)
            self._set_state(CameraState.FAILED, f"reader failed: {type(exc).__name__}: {exc}")

    def _connect_and_read(self) -> None:
        delay, failures = self.backoff, 0
        first = True
        while not self._stop.is_set():
            self._set_state(CameraState.CONNECTING if first else CameraState.RECONNECTING)
            first = False
            try:
                stream = self._opener(self.url)
            except SourceError as exc:  # a wrong URL: retrying will not help
                self._set_state(CameraState.FAILED, str(exc))
                return
            except OSError as exc:
                failures += 1
                self._set_state(CameraState.RECONNECTING, f"cannot connect: {exc}")
                if self.give_up is not None and failures >= self.give_up:
                    self._set_state(CameraState.FAILED, f"gave up after {failures} attempts: {exc}")
                    return
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if self.frames or failures:  # connected again after a drop or failed attempts
                self.reconnects += 1
            reading: list[threading.Thread] = []
            try:
                self._read_loop(stream, reading)
                delay, failures = self.backoff, 0  # it delivered: start the backoff again
            finally:
                self._release(stream, reading)
            if not self._stop.is_set():
                self._stop.wait(delay)

    def _release(self, stream: ImageStream, reading: list[threading.Thread]) -> None:
        """Close ``stream``, after its stalled read (if any) returns: a decoder closed while it
        decodes aborts the whole process."""

        def release() -> None:
            for worker in reading:
                worker.join()
            try:
                stream.release()
            except Exception:  # closing a broken stream may fail as well
                log.debug("camera %s: closing the stream failed", self.name)

        if any(w.is_alive() for w in reading):
            threading.Thread(target=release, name=f"camera-{self.name}-close", daemon=True).start()
        else:
            release()

    def _read_loop(self, stream: ImageStream, reading: list[threading.Thread]) -> None:
        """Read until the stream ends, errs or stalls; frames are timestamped at grab time (a
        stand-in file's at the time its set was made). ``reading``: the read in progress."""
        delivered = False
        while not self._stop.is_set():
            box: list[object] = []
            worker = threading.Thread(target=_read_into, args=(stream, box), daemon=True)
            reading[:] = [worker]
            worker.start()
            worker.join(self.stall_s)
            if worker.is_alive():  # no frame in time: stalled (the stream is closed when the read returns)
                self._set_state(CameraState.STALLED, f"no frame for {self.stall_s:.1f} s")
                return
            image, stamp = box if box else (None, None)  # _read_into always puts both
            if isinstance(image, Exception):
                self._set_state(CameraState.RECONNECTING, f"read failed: {image}")
                return
            if image is None:
                self._set_state(CameraState.RECONNECTING, "stream ended")
                return
            now = stamp if isinstance(stamp, float) else time.monotonic()
            if not isinstance(image, np.ndarray) or image.ndim < 2:
                raise TypeError(f"the stream gave {type(image).__name__}, not an image")
            self.image_size = (image.shape[1], image.shape[0])
            if self.size is not None and self.image_size != tuple(self.size):
                w, h = self.image_size
                raise SourceError(f"delivers {w}x{h} but the room file's resolution is {self.size[0]}x{self.size[1]}")
            with self._lock:
                if len(self._frames) == self._frames.maxlen:
                    self.dropped += 1
                self._frames.append(Frame(self.name, image, now, self._index))
            self._index += 1
            self.frames += 1
            self._times.append(now)
            if not delivered:
                delivered = True
                self.error = None
                self._set_state(CameraState.LIVE)


def _read_into(stream: ImageStream, box: list[object]) -> None:
    """One frame and, for a stand-in file, the time it is due (else None) into ``box``."""
    try:
        image = stream.read()
        box += [image, getattr(stream, "frame_time", None)]
    except Exception as exc:  # network errors, decoder errors: the camera reconnects
        box += [exc, None]
