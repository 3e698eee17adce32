"""Write the keypoints exchange ``.npz`` (DESIGN.md) from pipeline results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Camera
from core.types import BodyEstimate

FORMAT_VERSION = 1


class KeypointsRecorder:
    """Keeps what the exchange file needs from each estimate (never the images, so memory stays
    small on long recordings) and writes it with :meth:`save`."""

    def __init__(self, cameras: list[Camera]) -> None:
        self.cameras = list(cameras)
        self._keypoints: list[np.ndarray] = []
        self._points3d: list[np.ndarray | None] = []
        self._timestamps: list[float] = []

    def __len__(self) -> int:
        return len(self._timestamps)

    def add(self, estimate: BodyEstimate) -> None:
        empty = np.zeros((17, 3), np.float32)  # a camera left out of a set (no frame near its time)
        kps = [estimate.keypoints2d[c.name].points if c.name in estimate.keypoints2d else empty for c in self.cameras]
        self._keypoints.append(np.stack(kps).astype(np.float32))
        self._points3d.append(None if estimate.keypoints3d is None else estimate.keypoints3d.copy())
        self._timestamps.append(estimate.timestamp)

    def save(self, path: str | Path) -> None:
        """keypoints float32 ``[T, V, 17, 3]``; K/R/t/dist when calibrated; image_size ``[V, 2]``;
        camera_names; timestamps ``[T]``; keypoints3d ``[T, 17, 3]`` world metres (NaN where not
        triangulated) and keypoints3d_conf ``[T, 17]`` when calibrated."""
        cams = self.cameras
        data: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "keypoints": np.stack(self._keypoints),
            "camera_names": np.array([c.name for c in cams]),
            "image_size": np.array([c.image_size for c in cams], np.int32),
            "timestamps": np.array(self._timestamps, np.float64),
        }
        if all(c.calibrated for c in cams):
            data["K"] = np.stack([c.K for c in cams if c.K is not None]).astype(np.float32)
            data["R"] = np.stack([c.R for c in cams if c.R is not None]).astype(np.float32)
            data["t"] = np.stack([c.t for c in cams if c.t is not None]).astype(np.float32)
            data["dist"] = np.stack([c.dist for c in cams]).astype(np.float32)
        if self._points3d and all(p is not None for p in self._points3d):
            k3d = np.stack([p for p in self._points3d if p is not None])
            data["keypoints3d"] = k3d[..., :3].astype(np.float32)
            data["keypoints3d_conf"] = k3d[..., 3].astype(np.float32)
        np.savez_compressed(path, **data)


def save_keypoints_npz(path: str | Path, estimates: list[BodyEstimate], cameras: list[Camera]) -> None:
    """Write ``estimates`` to the exchange file at ``path`` (see :meth:`KeypointsRecorder.save`)."""
    recorder = KeypointsRecorder(cameras)
    for estimate in estimates:
        recorder.add(estimate)
    recorder.save(path)
