"""The Qt-free pipeline: FrameSet -> 2D detection in every view -> triangulation -> BodyEstimate.

Results are published to subscribers (callables) with per-stage timings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from calibration.camera import Camera
from core.types import BodyEstimate, FrameSet, Keypoints2D
from engine.detect.base import Detector
from engine.triangulate import triangulate_views

log = logging.getLogger(__name__)

Subscriber = Callable[[BodyEstimate], None]


class Pipeline:
    """Turns FrameSets into BodyEstimates.

    cameras: the calibration (or uncalibrated cameras) by name; triangulation runs when every
    camera of a set is calibrated and at least two views are present.
    workers: threads for per-view detection (views run in parallel).
    """

    def __init__(self, detector: Detector, cameras: list[Camera], workers: int = 2, min_confidence: float = 0.3) -> None:
        self.detector = detector
        self.cameras = {c.name: c for c in cameras}
        self.min_confidence = min_confidence
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="detect")
        self._subscribers: list[Subscriber] = []

    @property
    def calibrated(self) -> bool:
        return len(self.cameras) >= 2 and all(c.calibrated for c in self.cameras.values())

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(estimate)`` for every result; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def process(self, frameset: FrameSet) -> BodyEstimate:
        start = time.perf_counter()
        timings = {"decode": frameset.decode_ms}
        keypoints = self._detect(frameset, timings)
        timings["detect"] = (time.perf_counter() - start) * 1000.0
        estimate = BodyEstimate(frameset, keypoints, timings_ms=timings)
        names = [n for n in frameset.frames if n in self.cameras]
        if self.calibrated and len(names) >= 2:
            t0 = time.perf_counter()
            self._triangulate(estimate, names)
            timings["triangulate"] = (time.perf_counter() - t0) * 1000.0
        timings["total"] = frameset.decode_ms + (time.perf_counter() - start) * 1000.0
        for callback in list(self._subscribers):
            callback(estimate)
        return estimate

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.detector.close()

    def _detect(self, frameset: FrameSet, timings: dict[str, float]) -> dict[str, Keypoints2D]:
        def run(name: str) -> tuple[str, Keypoints2D, float]:
            t0 = time.perf_counter()
            kp = self.detector.detect(name, frameset.frames[name].image)
            return name, kp, (time.perf_counter() - t0) * 1000.0

        results = list(self._pool.map(run, frameset.frames))
        for name, _, ms in results:
            timings[f"detect:{name}"] = ms
        return {name: kp for name, kp, _ in results}

    def _triangulate(self, estimate: BodyEstimate, names: list[str]) -> None:
        cams = [self.cameras[n] for n in names]
        kps = np.stack([estimate.keypoints2d[n].points for n in names]).astype(np.float64)
        result = triangulate_views(cams, kps, self.min_confidence)
        estimate.keypoints3d = result.points
        estimate.reprojection_px = result.errors_px
        for name in result.rejected:
            # This view follows someone else: let its tracker look again next frame.
            log.info("camera %s disagrees with the other views (%.0f px); re-detecting", name, result.errors_px[name])
            self.detector.reset(name)
