"""MediaPipe BlazePose (full model, bundled offline in the mediapipe wheel), one tracker per view.

The 33 BlazePose landmarks are mapped to COCO-17; a keypoint's confidence is the landmark's
visibility. The legacy solution tracks one person per view: it detects the most salient person,
then follows that person's region from frame to frame. When a calibrated view's tracker follows
someone other than the subject the other views agree on, the pipeline calls
:meth:`BlazePoseDetector.detect_region` with the box where the subject must be.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from core.errors import DetectorError
from core.types import Keypoints2D
from engine.detect.base import register_detector

# BlazePose landmark index for each COCO-17 keypoint.
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])


@register_detector("blazepose")
class BlazePoseDetector:
    """BlazePose per camera. ``max_side`` downsizes large frames before detection (px)."""

    name = "blazepose"

    def __init__(self, min_confidence: float = 0.5, max_side: int = 960, smooth: bool = True) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise DetectorError(f"detector 'blazepose' needs mediapipe 0.10.21 ({exc})") from exc
        self._mp_pose = mp_pose
        self.min_confidence, self.max_side, self.smooth = min_confidence, max_side, smooth
        self._trackers: dict[str, Any] = {}
        self._statics: dict[str, Any] = {}
        self._fresh: set[int] = set()

    def detect(self, camera: str, image: np.ndarray) -> Keypoints2D:
        return self._run(self._tracker(camera), camera, image, (0, 0))

    def detect_region(self, camera: str, image: np.ndarray, box: tuple[int, int, int, int]) -> Keypoints2D:
        """Detect afresh inside ``box`` = (x0, y0, x1, y1) px, without tracking (used when the
        tracker follows someone other than the subject the other views agree on)."""
        x0, y0, x1, y1 = box
        if x1 - x0 < 16 or y1 - y0 < 16:
            return Keypoints2D.empty(camera)
        return self._run(self._static(camera), camera, image[y0:y1, x0:x1], (x0, y0))

    def _run(self, graph: Any, camera: str, image: np.ndarray, offset: tuple[int, int]) -> Keypoints2D:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        if id(graph) in self._fresh:
            self._fresh.discard(id(graph))
            with _quiet_native_stderr():  # the first run of a graph prints TFLite/absl banners
                result = graph.process(rgb)
        else:
            result = graph.process(rgb)
        if result.pose_landmarks is None:
            return Keypoints2D.empty(camera)
        lm = result.pose_landmarks.landmark
        points = np.array(
            [[lm[i].x * w + offset[0], lm[i].y * h + offset[1], lm[i].visibility] for i in BLAZEPOSE_TO_COCO17], np.float32
        )
        points[:, 2] = np.clip(points[:, 2], 0.0, 1.0)
        return Keypoints2D(camera, points)

    def reset(self, camera: str | None = None) -> None:
        for graphs in (self._trackers, self._statics):
            for name in list(graphs) if camera is None else [camera]:
                graph = graphs.pop(name, None)
                if graph is not None:
                    graph.close()

    def close(self) -> None:
        self.reset()

    def _tracker(self, camera: str) -> Any:
        if camera not in self._trackers:
            self._trackers[camera] = self._new_graph(static=False)
        return self._trackers[camera]

    def _static(self, camera: str) -> Any:
        if camera not in self._statics:
            self._statics[camera] = self._new_graph(static=True)
        return self._statics[camera]

    def _new_graph(self, static: bool) -> Any:
        with _quiet_native_stderr():
            graph = self._mp_pose.Pose(
                static_image_mode=static,
                model_complexity=1,
                smooth_landmarks=self.smooth and not static,
                min_detection_confidence=self.min_confidence,
                min_tracking_confidence=self.min_confidence,
            )
        self._fresh.add(id(graph))
        return graph


def _libc_fflush() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # not a POSIX libc: nothing buffered to lose
        pass


_stderr_lock = threading.Lock()
_stderr_depth = 0
_stderr_saved = -1


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence C++ log banners (absl/TFLite write straight to fd 2) while graphs start.

    Only graph creation and a graph's first run are wrapped, so run-time errors still show.
    Re-entrant across threads: fd 2 is restored when the last user leaves.
    """
    global _stderr_depth, _stderr_saved
    with _stderr_lock:
        if _stderr_depth == 0:
            _stderr_saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _stderr_depth += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _stderr_depth -= 1
            if _stderr_depth == 0:
                _libc_fflush()  # C stdio may still hold banner text: flush it into /dev/null
                os.dup2(_stderr_saved, 2)
                os.close(_stderr_saved)
