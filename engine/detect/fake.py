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

    ``people`` (each ``[17, 3]``, world metres) are everyone in the room, the subject included
    (default: the subject alone; without ``skeleton`` the subject is ``people[0]``).
    ``detect_people`` returns each person visible in a view (in front of the camera, projected
    inside the image) in a seeded random order; ``move`` sets new positions between frames.
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
        people: list[np.ndarray] | None = None,
    ) -> None:
        self.cameras = {c.name: c for c in cameras or []}
        self._follow_people = skeleton is None and bool(people)
        self.skeleton = STANDING_SKELETON if skeleton is None else np.asarray(skeleton, float)
        self.people = [self.skeleton]
        if people:
            self.move(people)
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

    def move(self, people: list[np.ndarray]) -> None:
        """Put everyone at new positions (each ``[17, 3]``, world metres)."""
        self.people = [np.asarray(p, float) for p in people]
        if self._follow_people:
            self.skeleton = self.people[0]

    def detect_people(self, camera: str, image: np.ndarray, timestamp: float | None = None) -> list[Keypoints2D]:
        self.calls += 1
        cam = self.cameras.get(camera)
        if cam is None or not cam.calibrated:
            return []
        visible = [p for p in self.people if _visible(cam, p)]
        return [self._project(camera, visible[i]) for i in self._rng.permutation(len(visible))]

    def detect_region(self, camera: str, image: np.ndarray, box: tuple[int, int, int, int]) -> Keypoints2D:
        """The person whose projection lies most inside ``box`` (over 80 % of the keypoints), else nothing."""
        self.region_calls += 1
        cam = self.cameras.get(camera)
        if cam is None or not cam.calibrated:
            return Keypoints2D.empty(camera)
        shares = [_inside(cam.project(p), box) if np.all(cam.depth(p) > 0) else 0.0 for p in self.people]
        best = int(np.argmax(shares))
        return self._project(camera, self.people[best]) if shares[best] > 0.8 else Keypoints2D.empty(camera)

    def reset(self, camera: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def _inside(xy: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the points ``[n, 2]`` inside ``box`` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    return float(((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)).mean())


def _visible(camera: Camera, skeleton: np.ndarray) -> bool:
    """In front of the camera with its projection inside the image."""
    w, h = camera.image_size
    return bool(np.all(camera.depth(skeleton) > 0)) and _inside(camera.project(skeleton), (0, 0, w, h)) == 1.0
