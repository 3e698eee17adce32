"""Crash-safe session recording.

A session folder holds:
- ``session.json``: metadata (app and model versions, cameras, the calibration snapshot, start and
  end, counts, why it stopped), rewritten atomically at start and stop;
- ``videos/<camera>.mjpeg``: the camera's frames as a stream of complete JPEG images, appended
  frame by frame (any JPEG reader can split it); what is kept depends on the video mode (privacy):
  ``all`` every frame, ``events`` only the frames within ``padding_s`` of a marked event
  (:meth:`SessionRecorder.mark_event`; the frames of the last seconds wait in memory, as JPEGs, in
  case an event comes), ``results`` none; with ``blur_faces`` every face is blurred before encoding;
- ``videos/<camera>.csv``: ``set_index, frame_index, timestamp, offset, length`` per stored
  frame (where its JPEG lies in the .mjpeg file; 0, 0 without video; in ``events`` mode only the
  frames kept are listed);
- ``events.jsonl``: one JSON object per line (:meth:`SessionRecorder.write_event`), each written
  through at once from the calling thread;
- ``results/chunk_NNNNNN.npz``: keypoints, 3D keypoints and body results of about one second of
  frame-sets each, written to a temporary name and renamed (a chunk is whole or absent), and
  ``results/chunk_NNNNNN.log``, the append-only log of the chunk being gathered (one record per
  frame-set; removed once its chunk is written).

Every append goes straight to the operating system (no user-space buffer), frame-set by
frame-set, so a killed process loses at most the frame-set being written. When a write fails
(full disk), the files are cut back to the last whole frame-set, a small reserve file is freed
so that ``session.json`` can still be finalised with the stop reason, and no temporary file is
left behind.

The pipeline hands estimates to :meth:`SessionRecorder.add` (its subscriber), which never blocks:
a bounded queue (in sets and in bytes) feeds a writer thread, which has the JPEGs encoded on a
small thread pool (OpenCV releases the GIL), so a slow disk or CPU drops recorded sets (counted)
and never stalls capture. Free disk space is checked before creating anything and during
recording: below ``min_free_bytes`` the recording stops cleanly with a message, and the live
view goes on.
"""

from __future__ import annotations

import collections
import datetime
import errno
import functools
import io
import json
import logging
import math
import os
import queue
import shutil
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.camera import Camera
from core.errors import AppError
from core.formats import SESSION_FORMAT_VERSION, pad_people, people_arrays, results_arrays
from core.privacy import Box, face_boxes, hide_boxes
from core.types import EVENT_FORMAT_VERSION, BodyEstimate

log = logging.getLogger(__name__)

CHUNK_SECONDS = 1.0
JPEG_QUALITY = 85
DEFAULT_MIN_FREE = 500 * 1024 * 1024
MIN_FREE_ENV = "ROOM_CAPTURE_MIN_FREE_MB"


def min_free_bytes() -> int:
    """The free disk space a recording needs: ``$ROOM_CAPTURE_MIN_FREE_MB`` or the default."""
    text = os.environ.get(MIN_FREE_ENV, "").strip()
    if not text:
        return DEFAULT_MIN_FREE
    try:
        value = float(text)
    except ValueError:
        raise RecordingError(f"environment variable {MIN_FREE_ENV}={text!r}: not a number of MB") from None
    if not 0 <= value < 2**40:
        raise RecordingError(f"environment variable {MIN_FREE_ENV}={text!r}: must be between 0 and 2**40 MB")
    return int(value * 2**20)


DEFAULT_QUEUE_BYTES = 384 * 1024 * 1024
RESERVE_BYTES = 1024 * 1024  # freed on a full disk so that session.json can be finalised
RESERVE_NAME = ".space_reserve"
TABLE_HEADER = "set_index,frame_index,timestamp,offset,length\n"
RECORD_MAGIC = b"RSET"  # results log record: magic, uint32 length (little endian), an .npz

EVENTS_NAME = "events.jsonl"
VIDEO_MODES = ("all", "events", "results")
DEFAULT_PADDING_S = 10.0
EVENT_LATENCY_S = 2.0  # events mode: an event may be marked this late and still get its full lead-in
DEFAULT_BUFFER_BYTES = 256 * 1024 * 1024  # events mode: the most encoded frames held in memory
FACE_HOLD_S = 0.5  # blur_faces: a face box is kept this long after its person's head was last seen

STOP_USER = "stopped by the user"
STOP_END = "end of the source"
STOP_INTERRUPTED = "interrupted (Ctrl+C)"


class DiskUsage(Protocol):
    """What the ``disk_usage`` hook returns (as :func:`shutil.disk_usage` does): free bytes."""

    @property
    def free(self) -> int: ...


_Pending = collections.deque[tuple[BodyEstimate, dict[str, Future[tuple[bytes, float]]]]]  # sets being encoded


class RecordingError(AppError):
    """The session cannot be recorded (folder, disk space)."""


def _nearest_existing(folder: Path) -> Path:
    path = folder.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_recording_folder(
    folder: str | Path, min_free_bytes: int = DEFAULT_MIN_FREE, disk_usage: Callable[[str], DiskUsage] = shutil.disk_usage
) -> None:
    """Raise RecordingError (one line naming the folder) unless a session can be recorded into
    ``folder``: new or empty, creatable, with ``min_free_bytes`` free. Creates nothing, so it can
    run before the models load."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RecordingError(f"recording folder {folder}: is a file (choose a new folder)")
    if folder.is_dir() and any(folder.iterdir()):
        raise RecordingError(f"recording folder {folder}: not empty (choose a new folder)")
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise RecordingError(f"recording folder {folder}: cannot be created ({base} is a file)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise RecordingError(f"recording folder {folder}: cannot be created ({base} is not writable)")
    free = int(disk_usage(str(base)).free)
    if free < min_free_bytes:
        raise RecordingError(
            f"recording folder {folder}: only {free / 2**20:.0f} MB free before recording "
            f"(need {min_free_bytes / 2**20:.0f} MB)"
        )


class AppendFile:
    """A file appended to with direct system calls (a killed process loses nothing already
    appended) that can be cut back to the end of the last whole frame-set (:meth:`rollback`)."""

    def __init__(self, path: Path, header: bytes = b"") -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = self.mark = os.fstat(self.fd).st_size
        if self.size == 0 and header:
            try:
                self.append(header)
            except OSError:
                _quietly(self.rollback)
                os.close(self.fd)
                raise
            self.mark = self.size

    def append(self, data: bytes) -> int:
        """Write all of ``data``; returns the offset it starts at."""
        offset = self.size
        view = memoryview(data)
        while view:
            written = _write_fd(self.fd, view)
            view = view[written:]
            self.size += written
        return offset

    def commit(self) -> None:
        self.mark = self.size

    def rollback(self) -> None:
        if self.size != self.mark:
            os.ftruncate(self.fd, self.mark)
            self.size = self.mark

    def close(self, sync: bool = False) -> None:
        try:
            if sync:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)


_write_fd = os.write  # every append goes through here (tests replace it to simulate a full disk)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed; removed when writing fails)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[_write_fd(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_json(path: Path, data: dict[str, object]) -> None:
    _atomic_write(path, json.dumps(data, indent=2).encode())


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    """An .npz file's bytes, built in memory (so a failing disk never leaves a half-written zip)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def log_record(arrays: dict[str, np.ndarray]) -> bytes:
    body = npz_bytes(arrays)
    return RECORD_MAGIC + struct.pack("<I", len(body)) + body


def read_log_records(data: bytes) -> tuple[list[dict[str, np.ndarray]], int]:
    """The whole records of a results log, and how many bytes at its end were not a whole record
    (a crash while appending)."""
    records, position = [], 0
    while position + 8 <= len(data) and data[position : position + 4] == RECORD_MAGIC:
        (length,) = struct.unpack("<I", data[position + 4 : position + 8])
        end = position + 8 + length
        if end > len(data):
            break
        try:
            with np.load(io.BytesIO(data[position + 8 : end]), allow_pickle=False) as npz:
                records.append({k: npz[k] for k in npz.files})
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            break
        position = end
    return records, len(data) - position


@dataclass
class _Stats:
    encode_ms: collections.deque[float]
    write_ms: collections.deque[float]
    queue_max: int = 0

    @staticmethod
    def summary(values: collections.deque[float]) -> dict[str, float] | None:
        if not values:
            return None
        data = np.array(values)
        return {"median": round(float(np.median(data)), 2), "p95": round(float(np.percentile(data, 95)), 2)}


def _encode(image: np.ndarray, quality: int, faces: list[Box] | None = None) -> tuple[bytes, float]:
    """The frame as JPEG bytes (with the ``faces`` boxes blurred first) and the milliseconds it took."""
    start = time.perf_counter()
    if faces:
        image = hide_boxes(image, faces)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RecordingError(f"cannot encode a {image.shape} frame as JPEG")
    return jpeg.tobytes(), (time.perf_counter() - start) * 1000.0


@dataclass
class Clip:
    """One frame-set's frames ready to store: (camera, frame index, timestamp, JPEG or None)."""

    t: float  # the frame-set's time
    set_index: int
    frames: list[tuple[str, int, float, bytes | None]]

    @property
    def nbytes(self) -> int:
        return sum(len(jpeg) for *_, jpeg in self.frames if jpeg is not None)


class EventWindows:
    """The times to keep video of: ``[t - padding, t + padding]`` around each marked event,
    overlapping windows merged. Times are frame-set times (s)."""

    def __init__(self, padding_s: float) -> None:
        self.padding_s = padding_s
        self.spans: list[tuple[float, float]] = []  # sorted, disjoint

    def add(self, t: float) -> None:
        start, end = t - self.padding_s, t + self.padding_s
        kept = []
        for a, b in self.spans:
            if b < start or a > end:
                kept.append((a, b))
            else:
                start, end = min(a, start), max(b, end)
        self.spans = sorted([*kept, (start, end)])

    def covers(self, t: float) -> bool:
        return any(a <= t <= b for a, b in self.spans)

    def forget_before(self, t: float) -> None:
        """Drop the windows that ended before ``t`` (the sets come in time order)."""
        self.spans = [(a, b) for a, b in self.spans if b >= t]


class ClipBuffer:
    """The encoded frame-sets of the last ``span_s`` seconds, oldest first, bounded in bytes too
    (``evicted`` counts the sets pushed out by the byte bound before their time)."""

    def __init__(self, span_s: float, max_bytes: int) -> None:
        self.span_s, self.max_bytes = span_s, max_bytes
        self._clips: collections.deque[Clip] = collections.deque()
        self.nbytes = self.evicted = 0

    def __len__(self) -> int:
        return len(self._clips)

    def push(self, clip: Clip) -> None:
        self._clips.append(clip)
        self.nbytes += clip.nbytes
        self.drop_before(clip.t - self.span_s)
        while self.nbytes > self.max_bytes and self._clips:
            self.nbytes -= self._clips.popleft().nbytes
            self.evicted += 1

    def drop_before(self, t: float) -> None:
        while self._clips and self._clips[0].t < t:
            self.nbytes -= self._clips.popleft().nbytes

    def take(self, keep: Callable[[float], bool]) -> list[Clip]:
        """Remove and return (oldest first) the clips whose time ``keep`` accepts."""
        taken = [c for c in self._clips if keep(c.t)]
        if taken:
            self._clips = collections.deque(c for c in self._clips if not keep(c.t))
            self.nbytes -= sum(c.nbytes for c in taken)
        return taken


def _video_mode(video: str | None, store_video: bool) -> str:
    if video is None:
        return "all" if store_video else "results"
    if video not in VIDEO_MODES:
        raise RecordingError(f"recording video mode {video!r}: expected one of {', '.join(VIDEO_MODES)}")
    if not store_video and video != "results":
        raise RecordingError(f"recording: store_video=False records no video, which contradicts video={video!r}")
    return video


class SessionRecorder:
    """Records estimates (frames + results) into ``folder`` (created; must be empty or new).

    queue_size / max_queue_bytes bound the sets waiting for the writer; encoders is the number of
    JPEG encoding threads (default: one per CPU, at most 4).

    Privacy (the room file's ``[privacy]`` values, passed in as plain values): ``video`` is
    ``"all"`` (every frame), ``"events"`` (only the frames within ``padding_s`` of an event marked
    by :meth:`mark_event`; the last ``padding_s + EVENT_LATENCY_S`` seconds wait in memory as JPEGs,
    at most ``max_buffer_bytes``) or ``"results"`` (no video); None follows ``store_video`` (the
    ``--no-video`` flag: False = ``"results"``). ``blur_faces`` blurs every face found by the
    estimate's keypoints before a frame is encoded."""

    def __init__(
        self,
        folder: str | Path,
        cameras: list[Camera],
        store_video: bool = True,
        calibration_text: str | None = None,
        room_text: str | None = None,
        min_free_bytes: int = DEFAULT_MIN_FREE,
        queue_size: int = 64,
        disk_usage: Callable[[str], DiskUsage] = shutil.disk_usage,
        metadata: dict[str, object] | None = None,
        max_queue_bytes: int = DEFAULT_QUEUE_BYTES,
        encoders: int | None = None,
        jpeg_quality: int = JPEG_QUALITY,
        video: str | None = None,
        padding_s: float = DEFAULT_PADDING_S,
        blur_faces: bool = False,
        max_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ) -> None:
        self.folder = Path(folder)
        self.video = _video_mode(video, store_video)
        if not (math.isfinite(padding_s) and padding_s >= 0):
            raise RecordingError(f"recording: event padding {padding_s!r} s, expected a number of seconds >= 0")
        check_recording_folder(self.folder, min_free_bytes, disk_usage)  # before creating anything
        self.cameras = list(cameras)
        self.store_video = self.video != "results"
        self.padding_s, self.blur_faces = float(padding_s), blur_faces
        self._windows = EventWindows(self.padding_s)
        self._buffer = ClipBuffer(self.padding_s + EVENT_LATENCY_S, max_buffer_bytes)
        self._marks: list[float] = []
        self._marks_lock = threading.Lock()
        self._held_faces: dict[str, tuple[float, list[Box]]] = {}
        self._events: AppendFile | None = None
        self._events_lock = threading.Lock()
        self.events_written = self.video_sets = 0
        self.video_spans: list[list[float]] = []  # [first, last] frame-set times of each stretch of stored video
        self._last_video_set: int | None = None
        self.min_free_bytes = min_free_bytes
        self.queue_size, self.max_queue_bytes = queue_size, max_queue_bytes
        self.encoders = max(1, min(4, os.cpu_count() or 1) if encoders is None else encoders)
        self.jpeg_quality = jpeg_quality
        self._disk_usage = disk_usage
        self._queue: queue.Queue[tuple[BodyEstimate, int] | None] = queue.Queue()
        self._queued = self._queued_bytes = 0
        self._room = threading.Condition()
        self.recorded = self.dropped = self.discarded = 0
        self.stop_reason: str | None = None
        self.message: str | None = None
        self._files: dict[str, tuple[AppendFile | None, AppendFile]] = {}
        self._log: AppendFile | None = None
        self._chunk: list[dict[str, np.ndarray]] = []
        self._chunk_start: float | None = None
        self._chunks = 0
        self._stats = _Stats(collections.deque(maxlen=4000), collections.deque(maxlen=1000))
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.meta: dict[str, object] = {
            "format_version": SESSION_FORMAT_VERSION,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "cameras": [{"name": c.name, "image_size": list(c.image_size), "calibrated": c.calibrated} for c in cameras],
            "store_video": self.store_video,
            "video": self.video,
            "video_format": "mjpeg (concatenated JPEG images)" if self.store_video else None,
            "jpeg_quality": jpeg_quality if self.store_video else None,
            "blur_faces": blur_faces,
            "event_padding_s": self.padding_s if self.video == "events" else None,
            "calibration": calibration_text,
            "room": room_text,
            **(metadata or {}),
        }
        if video is not None or blur_faces:  # chosen by the privacy settings (not --no-video)
            self.meta["privacy"] = {"video": self.video, "blur_faces": blur_faces}
        self._create(calibration_text)

    def _create(self, calibration_text: str | None) -> None:
        """Make the folder and its first files; on failure remove everything made here."""
        created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        try:
            for sub in ("videos", "results"):
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
            if calibration_text is not None:
                _atomic_write(self.folder / "calibration.toml", calibration_text.encode())
            _atomic_write(self.folder / RESERVE_NAME, bytes(RESERVE_BYTES))
            self._events = AppendFile(self.folder / EVENTS_NAME)
            _atomic_json(self.folder / "session.json", self.meta)
        except OSError as exc:
            if self._events is not None:
                _quietly(self._events.close)
                self._events = None
            if created:
                shutil.rmtree(created[-1], ignore_errors=True)
            else:
                for name in ("videos", "results", "calibration.toml", RESERVE_NAME, EVENTS_NAME, "session.json"):
                    path = self.folder / name
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            raise RecordingError(f"recording folder {self.folder}: cannot create ({exc.strerror or exc})") from exc

    @property
    def active(self) -> bool:
        return self._thread is not None and not self._stopped.is_set() and self.message is None

    @property
    def failed(self) -> bool:
        """True when the recording stopped on an error (disk full, write error): ``message`` says
        why. A command-line run should then exit non-zero."""
        return self.message is not None

    def start(self) -> SessionRecorder:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        return self

    def add(self, estimate: BodyEstimate, block: bool = False) -> None:
        """Queue one estimate. Live capture never blocks: a full queue drops the set and counts
        it. ``block=True`` (a recorded or file source, which can wait) waits for room instead."""
        if not self.active:
            return
        size = sum(f.image.nbytes for f in estimate.frameset.frames.values()) if self.store_video else 0
        with self._room:
            while self._full(size):
                if not block or not self.active:
                    self.dropped += 1
                    return
                self._room.wait(0.1)
            self._queued += 1
            self._queued_bytes += size
            self._stats.queue_max = max(self._stats.queue_max, self._queued)
        self._queue.put((estimate, size))

    def _full(self, size: int) -> bool:
        return self._queued >= self.queue_size or (self._queued > 0 and self._queued_bytes + size > self.max_queue_bytes)

    def mark_event(self, t: float) -> None:
        """Keep the video from ``t - padding_s`` to ``t + padding_s`` (``t``: a frame-set time, s):
        in ``events`` mode the frames of that window still in memory are written and those to come
        are written as they arrive; overlapping windows merge. Nothing to do in the other modes.
        Any thread may call it; it never blocks on the disk."""
        if not math.isfinite(t):
            raise RecordingError(f"recording {self.folder}: event time {t!r} is not a number of seconds")
        if self.video == "events":
            with self._marks_lock:
                self._marks.append(float(t))

    def write_event(self, record: dict[str, object]) -> None:
        """Append ``record`` (one JSON object, e.g. core.types.Event.to_record(); given a
        ``format_version`` when it has none) as one line of ``events.jsonl``, written through to the
        operating system before returning (a process killed right after loses nothing). Any thread
        may call it, during and between the writer's sets. RecordingError when the record is not
        JSON, the recording has finished, or the line cannot be written (the file is then cut back
        to its last whole line)."""
        if not isinstance(record, dict):
            raise RecordingError(f"{self.folder / EVENTS_NAME}: an event is a dict, not a {type(record).__name__}")
        try:
            line = json.dumps({"format_version": EVENT_FORMAT_VERSION, **record}, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise RecordingError(f"{self.folder / EVENTS_NAME}: event {record!r} is not JSON ({exc})") from None
        with self._events_lock:
            if self._events is None:
                raise RecordingError(f"{self.folder / EVENTS_NAME}: the recording has finished; event not written")
            try:
                self._events.append(line.encode() + b"\n")
                self._events.commit()
            except OSError as exc:
                _quietly(self._events.rollback)
                raise RecordingError(f"{self.folder / EVENTS_NAME}: cannot write an event ({exc.strerror or exc})") from exc
            self.events_written += 1

    def stop(self, reason: str = STOP_USER, timeout: float = 30.0) -> None:
        """Write what is queued, close the files and finish session.json (idempotent)."""
        if self._thread is None:
            self._close_events(sync=True)
            return
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def stats(self) -> dict[str, object]:
        """Writer figures: JPEG encode and per-set write times (ms), the longest queue."""
        return {"encode_ms": _Stats.summary(self._stats.encode_ms), "write_ms": _Stats.summary(self._stats.write_ms),
                "queue_max": self._stats.queue_max, "encoder_threads": self.encoders,
                "jpeg_quality": self.jpeg_quality, "video_sets": self.video_sets,
                "buffer_sets": len(self._buffer), "buffer_bytes": self._buffer.nbytes,
                "buffer_evicted": self._buffer.evicted}  # fmt: skip

    # --- the writer thread ------------------------------------------------------------------------
    def _items(self, pending: _Pending) -> Iterator[BodyEstimate | None]:
        """Queued estimates in order; None when there is none right now but sets are in flight."""
        while True:
            try:
                item = self._queue.get(block=not pending)
            except queue.Empty:
                yield None
                continue
            if item is None:
                return
            with self._room:
                self._queued -= 1
                self._queued_bytes -= item[1]
                self._room.notify()
            yield item[0]

    def _run(self) -> None:
        pool = ThreadPoolExecutor(self.encoders, thread_name_prefix="jpeg") if self.store_video else None
        pending: _Pending = collections.deque()
        try:
            for estimate in self._items(pending):
                if estimate is None:  # nothing queued: write the oldest set as soon as its JPEGs are ready
                    self._write(*pending.popleft())
                    continue
                frames = estimate.frameset.frames
                jobs = {n: pool.submit(_encode, f.image, self.jpeg_quality, self._faces(estimate, n, f.image.shape))
                        for n, f in frames.items()} if pool else {}  # fmt: skip
                pending.append((estimate, jobs))
                while pending and (len(pending) > self.encoders or _done(pending[0][1])):
                    self._write(*pending.popleft())
            while pending:
                self._write(*pending.popleft())
            self._apply_marks()  # events marked after the last set
            for handle in self._handles():
                handle.commit()
            self._finish_chunk()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._halt(f"the disk is full ({self.folder}); recording stopped, everything before is kept")
            else:
                self._halt(f"cannot write to {self.folder} ({exc.strerror or exc}); recording stopped")
        except RecordingError as exc:
            self._halt(str(exc))
        finally:
            for _, jobs in pending:
                for job in jobs.values():
                    job.cancel()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            self._finalise()

    def _halt(self, message: str) -> None:
        self.message = message
        self.stop_reason = message
        log.warning("%s", message)
        for handle in self._handles():  # cut every file back to the last whole frame-set
            _quietly(handle.rollback)
        (self.folder / RESERVE_NAME).unlink(missing_ok=True)  # room for the last chunk and session.json
        try:
            self._finish_chunk()
        except OSError:
            pass  # its sets stay readable in the chunk's log
        while True:  # what was still queued is not written
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.discarded += 1

    def _faces(self, estimate: BodyEstimate, camera: str, shape: tuple[int, ...]) -> list[Box] | None:
        """The face boxes to blur in this camera's frame (blur_faces): every person's, and for
        FACE_HOLD_S those of the last set in which a face was found (a head missed for a moment)."""
        if not self.blur_faces:
            return None
        people = [p.keypoints2d[camera].points for p in estimate.people if camera in p.keypoints2d]
        if not estimate.people and camera in estimate.keypoints2d:
            people = [estimate.keypoints2d[camera].points]
        boxes = face_boxes(people, (shape[1], shape[0]))
        held_t, held = self._held_faces.get(camera, (-math.inf, []))
        if boxes:
            self._held_faces[camera] = (estimate.timestamp, boxes)
        if 0 <= estimate.timestamp - held_t <= FACE_HOLD_S:
            boxes = boxes + [b for b in held if b not in boxes]
        return boxes

    def _close_events(self, sync: bool) -> None:
        with self._events_lock:
            if self._events is not None:
                _quietly(functools.partial(self._events.close, sync))
                self._events = None

    def _finalise(self) -> None:
        self._close_files(sync=self.message is None)
        self._close_events(sync=self.message is None)
        (self.folder / RESERVE_NAME).unlink(missing_ok=True)
        for tmp in self.folder.glob("**/*.tmp"):
            tmp.unlink(missing_ok=True)
        self.meta.update(ended=datetime.datetime.now().isoformat(timespec="seconds"), sets=self.recorded,
                         dropped_sets=self.dropped, discarded_sets=self.discarded, chunks=self._chunks,
                         stop_reason=self.stop_reason, error=self.message, events=self.events_written,
                         video_sets=self.video_sets)  # fmt: skip
        if self.video == "events":
            self.meta.update(video_spans=[[round(a, 6), round(b, 6)] for a, b in self.video_spans],
                             buffer_evicted_sets=self._buffer.evicted)  # fmt: skip
        try:
            _atomic_json(self.folder / "session.json", self.meta)
        except OSError as exc:
            log.warning("recording %s: could not finalise session.json (%s)", self.folder, exc.strerror or exc)
        self._stopped.set()

    def _write(self, estimate: BodyEstimate, jobs: dict[str, Future[tuple[bytes, float]]]) -> None:
        """Append one frame-set to every file; a failure cuts the files back to before it. In
        ``events`` mode a set outside every event window goes to the memory buffer instead."""
        start = time.perf_counter()
        if self.video == "events" and not self._files:
            for camera in self.cameras:  # every camera's frame table exists, even with no event
                self._open(camera.name)
        self._apply_marks()
        frames = [(n, f.index, f.timestamp, self._jpeg(jobs.get(n))) for n, f in estimate.frameset.frames.items()]
        clip = Clip(estimate.timestamp, estimate.frameset.index, frames)
        self._windows.forget_before(clip.t)
        if self.video == "events" and not self._windows.covers(clip.t):
            self._buffer.push(clip)
        else:
            self._store(clip)
        row = row_arrays(estimate, self.cameras)
        if self._log is None:
            self._log = AppendFile(self.folder / "results" / f"chunk_{self._chunks:06d}.log")
        self._log.append(log_record(row))
        for handle in self._handles():
            handle.commit()
        self.recorded += 1
        self._chunk.append(row)
        self._stats.write_ms.append((time.perf_counter() - start) * 1000.0)
        now = time.monotonic()
        if self._chunk_start is None:
            self._chunk_start = now
        if now - self._chunk_start >= CHUNK_SECONDS:
            self._finish_chunk()
            self._check_space("while recording")

    def _jpeg(self, job: Future[tuple[bytes, float]] | None) -> bytes | None:
        if job is None:
            return None
        jpeg, encode_ms = job.result()
        self._stats.encode_ms.append(encode_ms)
        return jpeg

    def _store(self, clip: Clip) -> None:
        """Append a set's frames (or, without video, its rows) to the camera files."""
        for name, index, timestamp, jpeg in clip.frames:
            video, table = self._open(name)
            offset = length = 0
            if video is not None and jpeg is not None:
                offset, length = video.append(jpeg), len(jpeg)
            table.append(f"{clip.set_index},{index},{timestamp:.6f},{offset},{length}\n".encode())
        if self.store_video:
            self._buffer.drop_before(clip.t)  # older sets could no longer be stored in order
            self.video_sets += 1
            if self._last_video_set is not None and clip.set_index == self._last_video_set + 1 and self.video_spans:
                self.video_spans[-1][1] = clip.t
            else:
                self.video_spans.append([clip.t, clip.t])
            self._last_video_set = clip.set_index

    def _apply_marks(self) -> None:
        """Take the events marked since the last set: store the buffered sets they cover."""
        with self._marks_lock:
            marks, self._marks = self._marks, []
        for t in marks:
            self._windows.add(t)
        if marks:
            for clip in self._buffer.take(self._windows.covers):
                self._store(clip)

    def _open(self, name: str) -> tuple[AppendFile | None, AppendFile]:
        if name not in self._files:
            base = self.folder / "videos" / name
            video = AppendFile(base.with_suffix(".mjpeg")) if self.store_video else None
            try:
                table = AppendFile(base.with_suffix(".csv"), TABLE_HEADER.encode())
            except OSError:
                if video is not None:
                    video.close()
                raise
            self._files[name] = (video, table)
        return self._files[name]

    def _handles(self) -> list[AppendFile]:
        """Every open file of the recording: videos, frame tables and the results log."""
        handles = [h for pair in self._files.values() for h in pair if h is not None]
        return handles + ([self._log] if self._log is not None else [])

    def _close_files(self, sync: bool) -> None:
        for handle in self._handles():
            _quietly(functools.partial(handle.close, sync))
        self._files.clear()
        self._log = None

    def _finish_chunk(self) -> None:
        """Write the gathered sets as one compressed chunk and drop its log."""
        if not self._chunk:
            return
        data = concat_rows(self._chunk) | {"camera_names": np.array([c.name for c in self.cameras])}
        path = self.folder / "results" / f"chunk_{self._chunks:06d}.npz"
        _atomic_write(path, npz_bytes(data, compress=True))
        if self._log is not None:
            self._log.close()
            self._log = None
        path.with_suffix(".log").unlink(missing_ok=True)
        self._chunks += 1
        self._chunk, self._chunk_start = [], None

    def _check_space(self, when: str) -> None:
        free = int(self._disk_usage(str(self.folder)).free)
        if free < self.min_free_bytes:
            raise RecordingError(
                f"recording folder {self.folder}: only {free / 2**20:.0f} MB free {when} "
                f"(need {self.min_free_bytes / 2**20:.0f} MB); recording stopped, everything before is kept"
            )


def _done(jobs: dict[str, Future[tuple[bytes, float]]]) -> bool:
    return all(job.done() for job in jobs.values())


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except OSError as exc:
        log.debug("recording: ignoring %s while cleaning up", exc)


def row_arrays(estimate: BodyEstimate, cameras: list[Camera]) -> dict[str, np.ndarray]:
    """What the results keep of one estimate (no images), each array with a leading axis of 1:
    set_index, timestamps, keypoints ``[1, V, 17, 3]``, keypoints3d ``[1, 17, 4]`` (NaN when
    none), when HeatFormer ran, the body results (unprefixed, as the ``--out`` file has them: see
    core.formats.results_arrays; format-1 sessions named them ``body_*``), and everyone tracked
    (``people_*``: see core.formats.people_arrays; rows of different people counts are padded when
    joined). Merged (recording.reader.read_results) they are the results layout of README
    "Results files"."""
    empty = np.zeros((17, 3), np.float32)
    kp = np.stack([estimate.keypoints2d[c.name].points if c.name in estimate.keypoints2d else empty for c in cameras])
    k3d = estimate.keypoints3d if estimate.keypoints3d is not None else np.full((17, 4), np.nan)
    row = {
        "set_index": np.array([estimate.frameset.index], np.int64),
        "timestamps": np.array([estimate.timestamp], np.float64),
        "keypoints": kp.astype(np.float32)[None],
        "keypoints3d": np.asarray(k3d, np.float32)[None],
    }
    if estimate.body is not None:
        body = results_arrays([estimate.body], row["timestamps"], [c.name for c in cameras])
        row |= {k: v for k, v in body.items() if k not in ("timestamps", "camera_names", "format_version")}
    if estimate.people:
        row |= people_arrays([estimate.people], [c.name for c in cameras])
    return row


def concat_rows(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows (or chunks) joined along the first axis; the body arrays only when every row has them;
    the people arrays of every row that has them, widened to the most people of any row (rows
    without people get empty slots)."""
    slots = max((r["people_ids"].shape[1] for r in rows if "people_ids" in r), default=None)
    if slots is not None:
        rows = [pad_people(r if "people_ids" in r else r | _no_people(r, rows), slots) for r in rows]
    keys = [k for k in rows[0] if k != "camera_names" and all(k in r for r in rows)]
    return {k: np.concatenate([r[k] for r in rows]) for k in keys}


def _no_people(row: dict[str, np.ndarray], rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Zero-slot people arrays for a row that tracked nobody, shaped like the other rows'."""
    n = len(row["set_index"])
    model = next(r for r in rows if "people_ids" in r)
    return {k: np.zeros((n, 0, *v.shape[2:]), v.dtype) for k, v in model.items() if k.startswith("people_")}
