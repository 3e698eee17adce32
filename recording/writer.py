"""Crash-safe session recording.

A session folder holds:
- ``session.json``: metadata (app and model versions, cameras, the calibration snapshot, start and
  end, counts, why it stopped), rewritten atomically at start and stop;
- ``videos/<camera>.mjpeg``: the camera's frames as a stream of complete JPEG images, appended and
  flushed frame by frame (a crash loses at most the frame being written; any JPEG reader can
  split it), unless recording without video (privacy mode);
- ``videos/<camera>.csv``: ``set_index, frame_index, timestamp, offset, length`` per stored
  frame (where its JPEG lies in the .mjpeg file; 0, 0 without video), flushed per line;
- ``results/chunk_NNNNNN.npz``: keypoints, 3D keypoints and body results of about one second of
  frame-sets each, written to a temporary name and renamed (a chunk is whole or absent).

The pipeline hands estimates to :meth:`SessionRecorder.add` (its subscriber); a writer thread
does the disk work from a bounded queue, so a slow disk drops recorded sets (counted) and never
stalls capture. Free disk space is checked before and during recording: below ``min_free_bytes``
the recording stops cleanly with a message, and the live view goes on.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.camera import Camera
from core.errors import AppError
from core.types import BodyEstimate

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CHUNK_SECONDS = 1.0
JPEG_QUALITY = 90
DEFAULT_MIN_FREE = 500 * 1024 * 1024


class RecordingError(AppError):
    """The session cannot be recorded (folder, disk space)."""


def _atomic_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class SessionRecorder:
    """Records estimates (frames + results) into ``folder`` (created; must be empty or new)."""

    def __init__(
        self,
        folder: str | Path,
        cameras: list[Camera],
        store_video: bool = True,
        calibration_text: str | None = None,
        room_text: str | None = None,
        min_free_bytes: int = DEFAULT_MIN_FREE,
        queue_size: int = 64,
        disk_usage: Callable[[str], object] = shutil.disk_usage,
        metadata: dict[str, object] | None = None,
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise RecordingError(f"recording folder {self.folder}: not empty (choose a new folder)")
        self.cameras = list(cameras)
        self.store_video = store_video
        self.min_free_bytes = min_free_bytes
        self._disk_usage = disk_usage
        self._queue: queue.Queue[BodyEstimate | None] = queue.Queue(maxsize=queue_size)
        self.recorded = self.dropped = 0
        self.stop_reason: str | None = None
        self.message: str | None = None
        self._files: dict[str, tuple[object, object]] = {}
        self._chunk: list[_Row] = []
        self._chunk_start: float | None = None
        self._chunks = 0
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        try:
            (self.folder / "videos").mkdir(parents=True, exist_ok=True)
            (self.folder / "results").mkdir(exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"recording folder {self.folder}: cannot create ({exc.strerror})") from exc
        self._check_space("before recording")
        self.meta: dict[str, object] = {
            "format_version": FORMAT_VERSION,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "cameras": [{"name": c.name, "image_size": list(c.image_size), "calibrated": c.calibrated} for c in cameras],
            "store_video": store_video,
            "video_format": "mjpeg (concatenated JPEG images)" if store_video else None,
            "calibration": calibration_text,
            "room": room_text,
            **(metadata or {}),
        }
        if calibration_text is not None:
            (self.folder / "calibration.toml").write_text(calibration_text)
        _atomic_json(self.folder / "session.json", self.meta)

    @property
    def active(self) -> bool:
        return self._thread is not None and not self._stopped.is_set()

    def start(self) -> SessionRecorder:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        return self

    def add(self, estimate: BodyEstimate) -> None:
        """Queue one estimate (never blocks; a full queue drops the set and counts it)."""
        if not self.active:
            return
        try:
            self._queue.put_nowait(estimate)
        except queue.Full:
            self.dropped += 1

    def stop(self, reason: str = "stopped by the user", timeout: float = 30.0) -> None:
        """Write what is queued, close the files and finish session.json."""
        if self._thread is None:
            return
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    # --- the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                self._write(item)
                if self._stopped.is_set():
                    break
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._halt(f"the disk is full ({self.folder}); recording stopped, everything before is kept")
            else:
                self._halt(f"cannot write to {self.folder} ({exc.strerror or exc}); recording stopped")
        except RecordingError as exc:
            self._halt(str(exc))
        finally:
            try:
                self._flush_chunk()
            except OSError:
                pass
            self._close_files()
            self._stopped.set()
            self.meta.update(ended=datetime.datetime.now().isoformat(timespec="seconds"), sets=self.recorded,
                             dropped_sets=self.dropped, chunks=self._chunks, stop_reason=self.stop_reason)  # fmt: skip
            try:
                _atomic_json(self.folder / "session.json", self.meta)
            except OSError:
                log.warning("recording %s: could not update session.json", self.folder)

    def _halt(self, message: str) -> None:
        self.message = message
        self.stop_reason = message
        log.warning("%s", message)

    def _write(self, estimate: BodyEstimate) -> None:
        frames = estimate.frameset.frames
        for name, frame in frames.items():
            video, stamps = self._open(name)
            offset = length = 0
            if video is not None:
                ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    raise RecordingError(f"camera {name}: cannot encode a frame")
                offset, length = video.tell(), len(jpeg)  # type: ignore[attr-defined]
                video.write(jpeg.tobytes())  # type: ignore[attr-defined]
                video.flush()  # type: ignore[attr-defined]
            line = f"{estimate.frameset.index},{frame.index},{frame.timestamp:.6f},{offset},{length}\n"
            stamps.write(line)  # type: ignore[attr-defined]
            stamps.flush()  # type: ignore[attr-defined]
        self.recorded += 1
        self._chunk.append(_strip(estimate, self.cameras))
        now = time.monotonic()
        if self._chunk_start is None:
            self._chunk_start = now
        if now - self._chunk_start >= CHUNK_SECONDS:
            self._flush_chunk()
            self._check_space("while recording")

    def _open(self, name: str) -> tuple[object, object]:
        if name not in self._files:
            base = self.folder / "videos" / name
            video = base.with_suffix(".mjpeg").open("ab") if self.store_video else None
            stamps = base.with_suffix(".csv").open("a")
            if stamps.tell() == 0:
                stamps.write("set_index,frame_index,timestamp,offset,length\n")
            self._files[name] = (video, stamps)
        return self._files[name]

    def _close_files(self) -> None:
        for video, stamps in self._files.values():
            for handle in (video, stamps):
                if handle is not None:
                    try:
                        handle.close()  # type: ignore[attr-defined]
                    except OSError:
                        pass
        self._files.clear()

    def _flush_chunk(self) -> None:
        if not self._chunk:
            return
        data = chunk_arrays(self._chunk, self.cameras)
        path = self.folder / "results" / f"chunk_{self._chunks:06d}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **data)
        os.replace(tmp, path)
        self._chunks += 1
        self._chunk, self._chunk_start = [], None

    def _check_space(self, when: str) -> None:
        free = int(self._disk_usage(str(self.folder)).free)  # type: ignore[attr-defined]
        if free < self.min_free_bytes:
            raise RecordingError(
                f"recording folder {self.folder}: only {free / 2**20:.0f} MB free {when} "
                f"(need {self.min_free_bytes / 2**20:.0f} MB); recording stopped, everything before is kept"
            )


@dataclass(frozen=True)
class _Row:
    """What a results chunk keeps of one estimate (no images)."""

    set_index: int
    timestamp: float
    keypoints: np.ndarray  # [V, 17, 3]
    keypoints3d: np.ndarray  # [17, 4], NaN when none
    body: object


def _strip(estimate: BodyEstimate, cameras: list[Camera]) -> _Row:
    empty = np.zeros((17, 3), np.float32)
    kp = np.stack([estimate.keypoints2d[c.name].points if c.name in estimate.keypoints2d else empty for c in cameras])
    k3d = estimate.keypoints3d if estimate.keypoints3d is not None else np.full((17, 4), np.nan)
    return _Row(estimate.frameset.index, estimate.timestamp, kp.astype(np.float32), np.asarray(k3d, np.float32), estimate.body)


def chunk_arrays(rows: list[_Row], cameras: list[Camera]) -> dict[str, np.ndarray]:
    """One results chunk: set_index ``[n]``, timestamps ``[n]``, keypoints ``[n, V, 17, 3]``,
    keypoints3d ``[n, 17, 4]`` (NaN when none) and, when HeatFormer ran, the body results
    (``body_*``: see engine.heatformer.inference.results_arrays)."""
    data: dict[str, np.ndarray] = {
        "set_index": np.array([r.set_index for r in rows], np.int64),
        "timestamps": np.array([r.timestamp for r in rows], np.float64),
        "keypoints": np.stack([r.keypoints for r in rows]),
        "keypoints3d": np.stack([r.keypoints3d for r in rows]),
        "camera_names": np.array([c.name for c in cameras]),
    }
    if all(r.body is not None for r in rows):
        from engine.heatformer.inference import results_arrays

        body = results_arrays([r.body for r in rows], data["timestamps"], [c.name for c in cameras])  # type: ignore[misc]
        data |= {f"body_{k}": v for k, v in body.items() if k not in ("timestamps", "camera_names", "format_version")}
    return data
