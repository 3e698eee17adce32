"""Fuse per-view body estimates into one world-space body (calibrated rooms)."""

from __future__ import annotations

import numpy as np


def average_rotations(rotations: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted chordal L2 mean of rotation matrices ``[V, ..., 3, 3]`` over the first axis
    (the rotation nearest to the weighted sum), ``[..., 3, 3]``."""
    w = np.ones(rotations.shape[0]) if weights is None else np.asarray(weights, float)
    total = np.tensordot(w / max(w.sum(), 1e-12), rotations, axes=(0, 0))
    u, _, vt = np.linalg.svd(total)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones(total.shape[:-2] + (3,))
    fix[..., -1] = d
    return u @ (fix[..., :, None] * vt)


def fuse_views(
    orient_cam: np.ndarray, pose: np.ndarray, betas: np.ndarray, R: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One body from V views: orient_cam ``[V, 3, 3]`` (body to camera), pose ``[V, 23, 3, 3]``
    (local rotations), betas ``[V, 10]``, R ``[V, 3, 3]`` (world to camera). Returns the
    body-to-world orientation ``[3, 3]``, pose ``[23, 3, 3]`` and betas ``[10]``."""
    orient_world = np.transpose(R, (0, 2, 1)) @ orient_cam
    w = np.ones(len(R)) if weights is None else np.asarray(weights, float)
    return average_rotations(orient_world, w), average_rotations(pose, w), (w[:, None] * betas).sum(0) / max(w.sum(), 1e-12)
