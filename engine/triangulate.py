"""Multi-view triangulation of COCO-17 keypoints with outlier-view rejection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.camera import Camera
from core.geometry import triangulate_dlt


@dataclass(frozen=True)
class Triangulation:
    """points ``[17, 4]`` (world metres + confidence, NaN/0 where not triangulated);
    errors_px by camera (median reprojection error, NaN when not measurable); rejected: the
    cameras whose keypoints disagreed with the other views and were left out."""

    points: np.ndarray
    errors_px: dict[str, float]
    rejected: tuple[str, ...]


def triangulate_views(
    cameras: list[Camera], keypoints: np.ndarray, min_confidence: float = 0.3, outlier_px: float | None = None
) -> Triangulation:
    """Triangulate keypoints ``[V, 17, 3]`` seen by calibrated ``cameras`` (same order).

    A view whose median reprojection error exceeds ``outlier_px`` (default: 5% of its larger
    image side, at least 40 px) while the others agree is treated as seeing someone else and is
    dropped, as long as at least two views remain.
    """
    weights = np.where(keypoints[..., 2] >= min_confidence, keypoints[..., 2], 0.0)
    ideal = np.stack([cam.undistort(kp[:, :2]) for cam, kp in zip(cameras, keypoints, strict=True)])
    P = np.stack([cam.P for cam in cameras])
    active = np.ones(len(cameras), bool)
    while True:
        points, valid = triangulate_dlt(ideal[active], weights[active], P[active])
        errors = _reprojection_errors(cameras, keypoints, weights, points, valid)
        limits = np.array([outlier_px or max(40.0, 0.05 * max(c.image_size)) for c in cameras])
        excess = np.where(active & np.isfinite(errors), errors / limits, 0.0)
        worst = int(np.argmax(excess))
        if excess[worst] <= 1.0 or active.sum() <= 2:
            break
        active[worst] = False
    conf = np.where(valid, _mean_positive(weights[active]), 0.0)
    rejected = tuple(c.name for c, a in zip(cameras, active, strict=True) if not a)
    return Triangulation(
        np.hstack([points, conf[:, None]]), {c.name: float(e) for c, e in zip(cameras, errors, strict=True)}, rejected
    )


def _reprojection_errors(
    cameras: list[Camera], keypoints: np.ndarray, weights: np.ndarray, points: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    errors = np.full(len(cameras), np.nan)
    for v, cam in enumerate(cameras):
        seen = valid & (weights[v] > 0)
        if seen.any():
            diff = cam.project(points[seen]) - keypoints[v, seen, :2]
            errors[v] = float(np.median(np.linalg.norm(diff, axis=-1)))
    return errors


def _mean_positive(weights: np.ndarray) -> np.ndarray:
    count = np.sum(weights > 0, axis=0)
    return np.where(count > 0, weights.sum(axis=0) / np.maximum(count, 1), 0.0)
