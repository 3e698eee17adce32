"""A fake detector for tests: projects a known 3D skeleton into calibrated cameras."""

from __future__ import annotations

import numpy as np

from core.camera import Camera
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
    Cameras not in ``cameras`` get no detection. ``impostors`` maps a camera to another person's
    skeleton that its tracker follows instead (``detect_region`` still finds the subject).
    """

    name = "fake"

    def __init__(
        self,
        cameras: list[Camera] | None = None,
        skeleton: np.ndarray | None = None,
        noise_px: float = 0.0,
        confidence: float = 0.9,
        seed: int = 0,
        impostors: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.cameras = {c.name: c for c in cameras or []}
        self.skeleton = STANDING_SKELETON if skeleton is None else np.asarray(skeleton, float)
        self.noise_px, self.confidence = noise_px, confidence
        self._rng = np.random.default_rng(seed)
        self.impostors = dict(impostors or {})
        self.calls = 0
        self.region_calls = 0

    def detect(self, camera: str, image: np.ndarray) -> Keypoints2D:
        self.calls += 1
        return self._project(camera, self.impostors.get(camera, self.skeleton))

    def _project(self, camera: str, skeleton: np.ndarray) -> Keypoints2D:
        cam = self.cameras.get(camera)
        if cam is None or not cam.calibrated:
            return Keypoints2D.empty(camera)
        xy = cam.project(skeleton) + self._rng.normal(0.0, self.noise_px, (17, 2))
        conf = np.full((17, 1), self.confidence)
        return Keypoints2D(camera, np.hstack([xy, conf]).astype(np.float32))

    def detect_region(self, camera: str, image: np.ndarray, box: tuple[int, int, int, int]) -> Keypoints2D:
        """The subject's projection if it lies inside ``box``, else nothing."""
        self.region_calls += 1
        kp = self._project(camera, self.skeleton)
        x0, y0, x1, y1 = box
        inside = (kp.points[:, 0] >= x0) & (kp.points[:, 0] <= x1) & (kp.points[:, 1] >= y0) & (kp.points[:, 1] <= y1)
        return kp if inside.mean() > 0.8 else Keypoints2D.empty(camera)

    def reset(self, camera: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass
