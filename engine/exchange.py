"""Write the keypoints exchange ``.npz`` (DESIGN.md) from pipeline results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Camera
from core.types import BodyEstimate

FORMAT_VERSION = 1


def save_keypoints_npz(path: str | Path, estimates: list[BodyEstimate], cameras: list[Camera]) -> None:
    """keypoints float32 ``[T, V, 17, 3]``; K/R/t/dist/image_size when calibrated; camera_names;
    timestamps ``[T]``; keypoints3d ``[T, 17, 3]`` world metres (NaN where not triangulated) and
    keypoints3d_conf ``[T, 17]`` when calibrated."""
    names = [c.name for c in cameras]
    empty = np.zeros((17, 3), np.float32)  # a camera left out of a set (no frame near its time)
    keypoints = np.stack([[e.keypoints2d[n].points if n in e.keypoints2d else empty for n in names] for e in estimates])
    data: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "keypoints": keypoints.astype(np.float32),
        "camera_names": np.array(names),
        "image_size": np.array([c.image_size for c in cameras], np.int32),
        "timestamps": np.array([e.timestamp for e in estimates], np.float64),
    }
    if all(c.calibrated for c in cameras):
        data["K"] = np.stack([c.K for c in cameras if c.K is not None]).astype(np.float32)
        data["R"] = np.stack([c.R for c in cameras if c.R is not None]).astype(np.float32)
        data["t"] = np.stack([c.t for c in cameras if c.t is not None]).astype(np.float32)
        data["dist"] = np.stack([c.dist for c in cameras]).astype(np.float32)
    if all(e.keypoints3d is not None for e in estimates):
        k3d = np.stack([e.keypoints3d for e in estimates if e.keypoints3d is not None])
        data["keypoints3d"] = k3d[..., :3].astype(np.float32)
        data["keypoints3d_conf"] = k3d[..., 3].astype(np.float32)
    np.savez_compressed(path, **data)
