"""The camera model: calibrated pinhole with distortion, or uncalibrated (weak-perspective)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from core import geometry


@dataclass(frozen=True)
class Camera:
    """One camera.

    image_size: (width, height) px. K ``[3, 3]``, dist ``[5]`` (k1, k2, p1, p2, k3),
    R ``[3, 3]`` world-to-camera, t ``[3]`` metres. An uncalibrated camera has K, R, t None;
    the model then estimates a weak-perspective camera per frame.
    """

    name: str
    image_size: tuple[int, int]
    K: np.ndarray | None = None
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray | None = None
    t: np.ndarray | None = None

    @property
    def calibrated(self) -> bool:
        return self.K is not None and self.R is not None and self.t is not None

    @property
    def rvec(self) -> np.ndarray:
        return geometry.matrix_to_rodrigues(self._require(self.R))

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, ``[3]``."""
        return -self._require(self.R).T @ self._require(self.t)

    @property
    def P(self) -> np.ndarray:
        """Projection matrix ``[3, 4]`` (for undistorted pixels)."""
        return geometry.projection_matrix(self._require(self.K), self._require(self.R), self._require(self.t))

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points ``[..., 3]`` to distorted pixels ``[..., 2]``."""
        return geometry.project_points(points, self._require(self.K), self._require(self.R), self._require(self.t), self.dist)

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels ``[..., 2]`` to ideal pixels ``[..., 2]``."""
        return geometry.undistort_pixels(pixels, self._require(self.K), self.dist)

    def depth(self, points: np.ndarray) -> np.ndarray:
        """Depth along the optical axis of world points ``[..., 3]``."""
        return (np.asarray(points) @ self._require(self.R).T + self._require(self.t))[..., 2]

    def _require(self, value: np.ndarray | None) -> np.ndarray:
        if value is None:
            raise ValueError(f"camera {self.name!r} is not calibrated")
        return value


def rig_calibrated(cameras: Iterable[Camera]) -> bool:
    """The one rule for a calibrated rig: at least two cameras, every one with K, R and t.
    Anything less runs per view with a weak-perspective camera."""
    cams = list(cameras)
    return len(cams) >= 2 and all(c.calibrated for c in cams)


def uncalibrated(name: str, image_size: tuple[int, int]) -> Camera:
    """A camera known only by name and image size (weak-perspective mode)."""
    return Camera(name=name, image_size=image_size)


def looking_at(
    name: str,
    eye: tuple[float, float, float],
    target: tuple[float, float, float] = (0.0, 0.0, 0.9),
    size: tuple[int, int] = (640, 480),
    focal: float = 600.0,
) -> Camera:
    """A distortion-free camera at ``eye`` looking at ``target`` (world: Z up, metres), image x to
    the right of the view, principal point at the image centre (synthetic rooms, tests)."""
    eye_arr = np.asarray(eye, float)
    z = np.asarray(target, float) - eye_arr
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    K = np.array([[focal, 0.0, size[0] / 2], [0.0, focal, size[1] / 2], [0.0, 0.0, 1.0]])
    return Camera(name, size, K, np.zeros(5), R, -R @ eye_arr)


def shifted_to_size(camera: Camera, size: tuple[int, int]) -> Camera:
    """``camera`` for images of ``size`` (w, h) that differ a little from the calibrated size:
    the principal point moves by half the difference (the picture is assumed to keep its centre).

    Measured on the Pose2Sim Qualisys videos, where the same cameras recorded 1080 and 1088 px
    wide (static vs balancing trial, SIFT matches on the background): the picture's centre moved
    by +4.2, +4.0, -3.9 and -4.1 px (half of +-8) and 0.1 px in y. Those videos also differ by a
    0.7 % zoom (the width ratio), which this does not correct. On the balancing trial, cam02's
    keypoints reprojected from cam03 + cam04 have a median x residual of +3.9 px with the 1088 px
    calibration as is and -0.1 px with this shift."""
    if camera.K is None:
        return replace(camera, image_size=size)
    K = np.array(camera.K, dtype=np.float64)
    K[0, 2] += (size[0] - camera.image_size[0]) / 2
    K[1, 2] += (size[1] - camera.image_size[1]) / 2
    return replace(camera, image_size=size, K=K)


def project_views(cameras: list[Camera], points: np.ndarray) -> np.ndarray:
    """World points ``[..., 3]`` to distorted pixels in every one of the calibrated ``cameras``:
    ``[V, ..., 2]`` (the same as each camera's :meth:`Camera.project`, in one go)."""
    stack = lambda name: np.stack([np.asarray(c._require(getattr(c, name)), np.float64) for c in cameras])  # noqa: E731
    dist = np.stack([geometry._dist5(c.dist) for c in cameras])
    return geometry.project_points_views(points, stack("K"), stack("R"), stack("t"), dist)
