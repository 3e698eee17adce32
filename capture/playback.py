"""Video files and image folders standing in for live cameras (to try a room without cameras).

A room's video files are played together by one :class:`StandInPlayer`: one thread runs a
real-time, looping :class:`~capture.replay.SessionReplay` of all of them, so they restart together
and every set holds the same instant of the recording in every view; each camera's stream takes its
frame of the newest set, stamped with the set's time in the recording carried onto the monotonic
clock (the same for every camera and a frame period apart from the next set's, so the camera group
pairs them exactly). A machine too slow for the recording's rate gets the replay's slow motion,
never views that drift apart. Only the player's thread touches the decoders.

A file opened on its own (``VideoFileStream``, e.g. to test one camera) and an image folder play at
their own rate, looping.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from core.errors import SourceError
from core.types import FrameSet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MAX_DRIFT_S = 0.1  # set times further than this from the monotonic clock (slow motion) are carried forward


class StandInPlayer:
    """Plays ``files`` (camera name -> video file) together while any of their streams is open."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = dict(files)
        self._cond = threading.Condition()
        self._set: FrameSet | None = None
        self._stamp = 0.0
        self._seq = 0
        self._error: str | None = None
        self._users = 0
        self._thread: threading.Thread | None = None

    def stream(self, name: str) -> PlayerStream:
        """The stream of camera ``name``; the first one starts the player."""
        with self._cond:
            self._users += 1
            if self._thread is None or not self._thread.is_alive():
                self._error = None
                self._thread = threading.Thread(target=self._run, name="stand-in player", daemon=True)
                self._thread.start()
        return PlayerStream(self, name)

    def release(self, timeout: float = 3.0) -> None:
        """One stream fewer; the last one stops the player and waits for its decoders to close."""
        with self._cond:
            self._users -= 1
            self._cond.notify_all()
            last, thread = self._users <= 0, self._thread
        if last and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait_newer(self, seq: int) -> tuple[FrameSet | None, float, int]:
        """The newest set after ``seq`` (waits for it); (None, 0, seq) when the player stopped.
        OSError with the reason when the files cannot be played."""
        with self._cond:
            while self._seq <= seq and self._error is None and self._running():
                self._cond.wait(0.5)
            if self._seq > seq:
                return self._set, self._stamp, self._seq
            if self._error is not None:
                raise OSError(self._error)
            return None, 0.0, seq

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        from capture.replay import SessionReplay
        from capture.sources import VideoFileSource

        replay = None
        offset: float | None = None  # monotonic time - recording time
        try:
            replay = SessionReplay([VideoFileSource(p, name=n) for n, p in self.files.items()], realtime=True, loop=True)
            replay.open()
            while self._users > 0:
                frameset = replay.next()
                if frameset is None:
                    raise SourceError("the videos ended")
                now = time.monotonic()
                if offset is None or abs(offset + frameset.reference_time - now) > MAX_DRIFT_S:
                    offset = now - frameset.reference_time
                stamp = max(offset + frameset.reference_time, self._stamp + 1e-6)
                with self._cond:
                    self._set, self._stamp, self._seq = frameset, stamp, self._seq + 1
                    self._cond.notify_all()
        except Exception as exc:  # a broken file: every stand-in says why (and retries)
            with self._cond:
                self._error = f"cannot play the videos: {exc}"
                self._cond.notify_all()
        finally:
            if replay is not None:
                replay.close()


class PlayerStream:
    """One camera's frames from a :class:`StandInPlayer` (read/release like any camera stream)."""

    def __init__(self, player: StandInPlayer, name: str) -> None:
        self._player, self._name = player, name
        self._seq = 0
        self._open = True
        self.frame_time: float | None = None

    def read(self) -> np.ndarray | None:
        while self._open:
            frameset, stamp, self._seq = self._player.wait_newer(self._seq)
            if frameset is None:
                return None
            frame = frameset.frames.get(self._name)
            if frame is not None:  # else this camera sat this set out: wait for the next
                self.frame_time = stamp
                return frame.image
        return None

    def release(self) -> None:
        if self._open:
            self._open = False
            self._player.release()


class _Paced:
    """Frames at ``fps`` on the monotonic clock; a late reader goes on from now (no burst)."""

    def __init__(self, fps: float) -> None:
        self._interval = 1.0 / fps
        self._next = time.monotonic()

    def wait(self) -> None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self._interval, time.monotonic() - self._interval)


class VideoFileStream(_Paced):
    """A video file played on its own as a camera at its frame rate, looping."""

    def __init__(self, path: str | Path) -> None:
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise OSError("cannot open the video")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        super().__init__(fps if fps and fps > 0 else 30.0)

    def read(self) -> np.ndarray | None:
        self.wait()
        ok, image = self._cap.read()
        if not ok:  # the end: play on from the start
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        return image if ok else None

    def release(self) -> None:
        self._cap.release()


class ImageFolderStream(_Paced):
    """The images of a folder (name order) played as a camera at ``fps``, looping."""

    def __init__(self, folder: Path, fps: float = 10.0) -> None:
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"camera folder {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        super().__init__(fps)
        self._i = 0

    def read(self) -> np.ndarray | None:
        self.wait()
        image = cv2.imread(str(self._files[self._i % len(self._files)]))
        self._i += 1
        return image

    def release(self) -> None:
        pass
