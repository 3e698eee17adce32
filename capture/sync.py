"""Group live cameras' frames into synchronized :class:`FrameSet` objects.

Each set takes, from every camera that has one, its frame nearest to a reference time (the
newest frame of the camera that is furthest behind); frames further than ``tolerance`` from it
are not used. A camera that stops delivering is left out (the engine takes any number of views)
and taken back when it returns. Reported per set: the inter-camera skew (ms).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from capture.live import CameraHealth, CameraState, LiveCamera
from core.types import Frame, FrameSet


class CameraGroup:
    """The room's cameras as one source of FrameSets (same ``next()`` as SessionReplay).

    tolerance_s: None = half the slowest camera's frame interval (measured), at most 50 ms.
    wait_s: how long ``next()`` waits for every live camera to have a new frame.
    """

    def __init__(self, cameras: Sequence[LiveCamera], tolerance_s: float | None = None, wait_s: float = 1.0) -> None:
        self.cameras = list(cameras)
        self.tolerance_s, self.wait_s = tolerance_s, wait_s
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
        for cam in self.cameras:
            if cam.state == CameraState.STOPPED:
                cam.start()

    def close(self) -> None:
        self._closed = True
        for cam in self.cameras:
            cam.stop()

    def rewind(self) -> None:  # live: nothing to rewind
        pass

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
            fresh = {c.name: [f for f in c.latest() if f.timestamp > self._last_reference + tolerance] for c in self.cameras}
            live = [c for c in self.cameras if c.state == CameraState.LIVE]
            ready = [c for c in self.cameras if fresh[c.name]]
            if ready and (all(fresh[c.name] for c in live) or time.monotonic() >= deadline):
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
