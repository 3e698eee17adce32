"""A fake detector for tests: projects a known 3D skeleton into calibrated cameras."""

from __future__ import annotations

import numpy as np

from calibration.camera import Camera
from core.types import Keypoints2D
from engine.detect.base import register_detector

# A standing person (COCO-17, metres, Z up) at the origin, facing +y.
STANDING_SKELETON = np.array(
    [
        [0.00, 0.08, 1.62], [0.03, 0.06, 1.66], [-0.03, 0.06, 1.66], [0.07, 0.0, 1.64], [-0.07, 0.0, 1.64],
        [0.18, 0.0, 1.42], [-0.18, 0.0, 1.42], [0.22, 0.0, 1.14], [-0.22, 0.0, 1.14], [0.24, 0.02, 0.88],
        [-0.24, 0.02, 0.88], [0.10, 0.0, 0.92], [-0.10, 0.0, 0.92], [0.11, 0.02, 0.50], [-0.11, 0.02, 0.50],
        [0.11, 0.0, 0.08], [-0.11, 0.0, 0.08],
    ]
)  # fmt: skip


@register_detector("fake")
class FakeDetector:
    """Returns the projection of ``skeleton`` ``[17, 3]`` (world, metres) into each camera.

    noise_px adds seeded Gaussian pixel noise; ``confidence`` is the reported confidence.
    Cameras not in ``cameras`` get no detection.
    """

    name = "fake"

    def __init__(
        self,
        cameras: list[Camera] | None = None,
        skeleton: np.ndarray | None = None,
        noise_px: float = 0.0,
        confidence: float = 0.9,
        seed: int = 0,
    ) -> None:
        self.cameras = {c.name: c for c in cameras or []}
        self.skeleton = STANDING_SKELETON if skeleton is None else np.asarray(skeleton, float)
        self.noise_px, self.confidence = noise_px, confidence
        self._rng = np.random.default_rng(seed)
        self.calls = 0

    def detect(self, camera: str, image: np.ndarray) -> Keypoints2D:
        self.calls += 1
        cam = self.cameras.get(camera)
        if cam is None or not cam.calibrated:
            return Keypoints2D.empty(camera)
        xy = cam.project(self.skeleton) + self._rng.normal(0.0, self.noise_px, (17, 2)) * (self.noise_px > 0)
        conf = np.full((17, 1), self.confidence)
        return Keypoints2D(camera, np.hstack([xy, conf]).astype(np.float32))

    def reset(self, camera: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass
