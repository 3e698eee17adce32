"""MediaPipe BlazePose (full model, bundled offline in the mediapipe wheel), one tracker per view.

The 33 BlazePose landmarks are mapped to COCO-17; a keypoint's confidence is the landmark's
visibility. The legacy solution tracks one person per view: it detects the most salient person,
then follows that person's region from frame to frame. ``reset(camera)`` forces a fresh
detection (the pipeline does this when a view disagrees with the other calibrated views).
"""

from __future__ import annotations

import os
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

    def detect(self, camera: str, image: np.ndarray) -> Keypoints2D:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        result = self._tracker(camera).process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        if result.pose_landmarks is None:
            return Keypoints2D.empty(camera)
        lm = result.pose_landmarks.landmark
        points = np.array([[lm[i].x * w, lm[i].y * h, lm[i].visibility] for i in BLAZEPOSE_TO_COCO17], np.float32)
        points[:, 2] = np.clip(points[:, 2], 0.0, 1.0)
        return Keypoints2D(camera, points)

    def reset(self, camera: str | None = None) -> None:
        names = list(self._trackers) if camera is None else [camera]
        for name in names:
            tracker = self._trackers.pop(name, None)
            if tracker is not None:
                tracker.close()

    def close(self) -> None:
        self.reset()

    def _tracker(self, camera: str) -> Any:
        tracker = self._trackers.get(camera)
        if tracker is None:
            tracker = self._mp_pose.Pose(
                static_image_mode=False,
                model_complexity=1,
                smooth_landmarks=self.smooth,
                min_detection_confidence=self.min_confidence,
                min_tracking_confidence=self.min_confidence,
            )
            self._trackers[camera] = tracker
        return tracker
