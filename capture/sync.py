"""Group live cameras' frames into synchronized :class:`FrameSet` objects.

Each set takes, from every camera that has one, its frame nearest to a reference time (the
newest frame of the camera that is furthest behind); frames further than ``tolerance`` from it
are not used. A camera that stops delivering is left out (the engine takes any number of views)
and taken back when it returns. Reported per set: the inter-camera skew (ms).

A room that never starts is an error, not a hang: when no camera has delivered a single frame
``connect_timeout_s`` after the group opened, or when every camera has failed for good, ``next()``
raises one SourceError naming each camera, its state and its last error (passwords redacted).
Once a camera has delivered, the group waits for cameras that drop out to come back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np

from capture.live import CameraHealth, CameraState, LiveCamera
from core.errors import SourceError
from core.types import Frame, FrameSet

CONNECT_TIMEOUT_S = 15.0
START_GRACE_S = 5.0  # the first sets wait this long, at most, for cameras still making their first connection


class CameraGroup:
    """The room's cameras as one source of FrameSets (same ``next()`` as SessionReplay).

    tolerance_s: None = half the slowest camera's frame interval (measured), at most 50 ms.
    wait_s: how long ``next()`` waits for every live camera to have a new frame.
    connect_timeout_s: give up when no camera delivered a frame this long after opening.
    label: what the errors name (e.g. ``room file rooms/lab.toml``).
    """

    def __init__(
        self,
        cameras: Sequence[LiveCamera],
        tolerance_s: float | None = None,
        wait_s: float = 1.0,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        label: str = "room",
    ) -> None:
        self.cameras = list(cameras)
        self.tolerance_s, self.wait_s = tolerance_s, wait_s
        self.connect_timeout_s, self.label = connect_timeout_s, label
        self._opened_at: float | None = None
        self._count = 0
        self._closed = False
        self._last_reference = -np.inf
        self.skew_ms: float = 0.0
        self.unmatched: dict[str, int] = {c.name: 0 for c in self.cameras}  # frames too far from their set

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def fps(self) -> float:
        rates = [c.fps for c in self.cameras if c.fps > 0]
        return min(rates) if rates else 30.0

    @property
    def skipped_sets(self) -> int:
        return 0

    def open(self) -> None:
        if self._opened_at is None:
            self._opened_at = time.monotonic()
        for cam in self.cameras:
            if cam.state == CameraState.STOPPED:
                cam.start()

    def close(self) -> None:
        self._closed = True
        for cam in self.cameras:
            cam.stop()

    def rewind(self) -> None:  # live: nothing to rewind
        pass

    def __iter__(self) -> Iterator[FrameSet]:
        while (frameset := self.next()) is not None:
            yield frameset

    def check(self) -> None:
        """SourceError when the room cannot deliver: every camera failed, or none delivered a
        frame within ``connect_timeout_s`` of opening."""
        if all(c.state == CameraState.FAILED for c in self.cameras):
            raise SourceError(f"{self.label}: every camera failed: {self.describe()}")
        waited = time.monotonic() - (self._opened_at or time.monotonic())
        if waited >= self.connect_timeout_s and not any(c.frames for c in self.cameras):
            raise SourceError(
                f"{self.label}: no camera delivered a frame in {self.connect_timeout_s:g} s (connect_timeout): {self.describe()}"
            )

    def _starting(self) -> bool:
        """Some camera is still making its first connection, shortly after opening."""
        if self._opened_at is None or time.monotonic() - self._opened_at > min(START_GRACE_S, self.connect_timeout_s):
            return False
        return any(c.state == CameraState.CONNECTING and not c.frames for c in self.cameras)

    def describe(self) -> str:
        """Each camera's name, URL (redacted), state and last error, on one line."""
        return "; ".join(f"{h.name} ({h.source}) {h.state.value}" + (f": {h.error}" if h.error else "") for h in self.health())

    def health(self) -> list[CameraHealth]:
        return [c.health() for c in self.cameras]

    def tolerance(self) -> float:
        if self.tolerance_s is not None:
            return self.tolerance_s
        rates = [c.fps for c in self.cameras if c.fps > 0]
        return min(0.5 / min(rates), 0.05) if rates else 0.05

    def next(self) -> FrameSet | None:
        """The next set: waits (up to ``wait_s``) until every live camera has a frame newer than
        the previous set, then pairs each camera's frame nearest to the newest frame of the
        camera furthest behind. Cameras with nothing new in time are left out; None once closed."""
        if self._closed:
            return None
        self.open()
        deadline = time.monotonic() + self.wait_s
        tolerance = self.tolerance()
        while True:
            if self._closed:
                return None
            self.check()
            fresh = {c.name: [f for f in c.latest() if f.timestamp > self._last_reference + tolerance] for c in self.cameras}
            live = [c for c in self.cameras if c.state == CameraState.LIVE]
            ready = [c for c in self.cameras if fresh[c.name]]
            complete = all(fresh[c.name] for c in live) and not self._starting()
            if ready and (complete or time.monotonic() >= deadline):
                break
            if not ready and time.monotonic() >= deadline:
                deadline = time.monotonic() + self.wait_s  # nobody delivers: keep waiting, stay responsive
            time.sleep(0.001)
        reference = min(fresh[c.name][-1].timestamp for c in ready)
        frames: dict[str, Frame] = {}
        for cam in ready:
            best = min(fresh[cam.name], key=lambda f: abs(f.timestamp - reference))
            if abs(best.timestamp - reference) <= tolerance:
                frames[cam.name] = best
                cam.take(best)
            else:
                self.unmatched[cam.name] += 1
        self._last_reference = reference
        times = [f.timestamp for f in frames.values()]
        self.skew_ms = (max(times) - min(times)) * 1000.0
        ordered = {c.name: frames[c.name] for c in self.cameras if c.name in frames}
        frameset = FrameSet(ordered, float(np.median(times)), self._count, 0.0)
        self._count += 1
        return frameset
