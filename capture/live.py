"""Live cameras: one reader thread per camera that timestamps frames at grab time, keeps only
the newest few, and reconnects by itself with capped exponential backoff.

Camera URLs: ``usb:0`` (a local device), ``rtsp://...``, ``http://...`` (MJPEG over HTTP, read
by our own multipart parser so that timeouts and reconnects are ours), a video file or an image
folder (played at their frame rate, looping, for trying a room without cameras). Passwords in URLs are
never logged or shown: :func:`redact`.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from core.errors import SourceError
from core.types import Frame

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


def redact(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x`` (any scheme with a password)."""
    return re.sub(r"(^[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@]+):[^/@]*@", r"\1:***@", url)


class MjpegStream:
    """A minimal MJPEG-over-HTTP reader (multipart/x-mixed-replace): ``read()`` -> BGR image or
    None when the stream ended; raises OSError on network errors (timeouts included)."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        import http.client

        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SourceError(f"camera URL {redact(url)}: not an http:// URL")
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {}
        if parts.username is not None:
            import base64

            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._conn.request("GET", path, headers=headers)
        self._response = self._conn.getresponse()
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
            chunk = self._response.read1(65536)
            if not chunk:
                return None
            self._buffer = (self._buffer[start:] if start >= 0 else self._buffer[-1:]) + chunk

    def release(self) -> None:
        self._conn.close()


class _CaptureStream:
    """cv2.VideoCapture behind the same read()/release() as MjpegStream."""

    def __init__(self, target: str | int, paced_fps: float | None = None, loop: bool = False) -> None:
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            raise OSError("cannot open")
        self._interval = 1.0 / paced_fps if paced_fps else 0.0
        self._next = time.monotonic()
        self._loop = loop

    def read(self) -> np.ndarray | None:
        if self._interval:  # a file plays at its own rate, like a camera
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next + self._interval, time.monotonic() - self._interval)
        ok, image = self._cap.read()
        if not ok and self._loop:  # a video file standing in for a camera plays on and on
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        return image if ok else None

    def release(self) -> None:
        self._cap.release()


class _ImageFolderStream:
    """The images of a folder (name order), looping, at ``fps``."""

    def __init__(self, folder: Path, fps: float = 10.0) -> None:
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        if not self._files:
            raise SourceError(f"camera folder {folder}: no images")
        self._i, self._interval, self._next = 0, 1.0 / fps, time.monotonic()

    def read(self) -> np.ndarray | None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self._interval, time.monotonic() - self._interval)
        image = cv2.imread(str(self._files[self._i % len(self._files)]))
        self._i += 1
        return image

    def release(self) -> None:
        pass


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
    """The kind of a camera URL (SourceError for an unknown one)."""
    for prefix, kind in (("usb:", "usb"), ("rtsp://", "rtsp"), ("http://", "http"), ("session:", "session")):
        if url.startswith(prefix):
            return SOURCE_KINDS[kind]
    path = Path(url)
    if path.is_dir():
        return SOURCE_KINDS["images"]
    if path.is_file():
        return SOURCE_KINDS["video"]
    known = ", ".join(k.example for k in SOURCE_KINDS.values())
    raise SourceError(f"camera URL {redact(url)}: unknown kind or missing file (e.g. {known})")


def open_stream(url: str, timeout: float = 2.0) -> MjpegStream | _CaptureStream | _ImageFolderStream:
    """Open a camera URL (see the module docstring); OSError when it cannot be opened now."""
    kind = source_kind(url)
    if kind.name == "session":
        raise SourceError(f"camera URL {url}: a recorded session is replayed with --source {url}, not as one camera")
    if url.startswith("usb:"):
        try:
            return _CaptureStream(int(url[4:]))
        except ValueError:
            raise SourceError(f"camera URL {url}: usb: needs a device number, e.g. usb:0") from None
    if url.startswith("http://"):
        return MjpegStream(url, timeout)
    if url.startswith("rtsp://"):
        return _CaptureStream(url)
    path = Path(url)
    if path.is_dir():
        return _ImageFolderStream(path)
    if path.is_file():
        cap = cv2.VideoCapture(str(path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        cap.release()
        return _CaptureStream(str(path), paced_fps=fps, loop=True)
    raise SourceError(f"camera URL {redact(url)}: cannot open")  # unreachable: source_kind() checked the kind


class LiveCamera:
    """One camera with its reader thread. ``latest()`` gives the newest frames; states are
    published to subscribers (callables taking a CameraHealth) whenever they change.

    stall_s: no frame for this long while connected -> STALLED, then the stream is reopened.
    backoff: first retry delay, doubled after each failure up to ``max_backoff``.
    give_up: stop retrying after this many failed attempts in a row (None = never).
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
        opener: Callable[[str], object] | None = None,
    ) -> None:
        self.name, self.url = name, url
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
            self.error = redact(error)
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
            try:
                self._read_loop(stream)
                delay, failures = self.backoff, 0  # it delivered: start the backoff again
            finally:
                try:
                    stream.release()  # type: ignore[attr-defined]
                except Exception:  # closing a broken stream may fail as well
                    log.debug("camera %s: closing the stream failed", self.name)
            if not self._stop.is_set():
                self._stop.wait(delay)

    def _read_loop(self, stream: object) -> None:
        """Read until the stream ends, errs or stalls; frames are timestamped at grab time."""
        reader = stream.read  # type: ignore[attr-defined]
        delivered = False
        while not self._stop.is_set():
            box: list[object] = []
            worker = threading.Thread(target=_read_into, args=(reader, box), daemon=True)
            worker.start()
            worker.join(self.stall_s)
            if worker.is_alive():  # no frame in time: stalled (the stream is dropped, the read thread ends with it)
                self._set_state(CameraState.STALLED, f"no frame for {self.stall_s:.1f} s")
                return
            image = box[0] if box else None
            if isinstance(image, Exception):
                self._set_state(CameraState.RECONNECTING, f"read failed: {image}")
                return
            if image is None:
                self._set_state(CameraState.RECONNECTING, "stream ended")
                return
            now = time.monotonic()
            assert isinstance(image, np.ndarray)
            self.image_size = (image.shape[1], image.shape[0])
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


def _read_into(reader: Callable[[], object], box: list[object]) -> None:
    try:
        box.append(reader())
    except Exception as exc:  # network errors, decoder errors: the camera reconnects
        box.append(exc)
