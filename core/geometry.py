"""Pure, batched camera geometry on numpy arrays.

Conventions: OpenCV camera frame (x right, y down, z forward), ``x_img ~ K (R X + t)``,
distortion ``(k1, k2, p1, p2, k3)`` as in OpenCV's 5-parameter model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def rodrigues_to_matrix(rvec: np.ndarray) -> np.ndarray:
    """Axis-angle ``[..., 3]`` to rotation matrices ``[..., 3, 3]``."""
    rvec = np.asarray(rvec, dtype=np.float64)
    theta = np.linalg.norm(rvec, axis=-1, keepdims=True)
    axis = rvec / np.where(theta > 1e-12, theta, 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*rvec.shape[:-1], 3, 3)
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), skew.shape)
    return eye + s * skew + (1.0 - c) * (skew @ skew)


def matrix_to_rodrigues(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` to axis-angle ``[..., 3]`` (angle in [0, pi])."""
    R = np.asarray(R, dtype=np.float64)
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    v_norm = np.linalg.norm(v, axis=-1)  # = 2 sin(theta)
    theta = np.arctan2(v_norm / 2.0, cos)
    axis = v / np.where(v_norm > 0, v_norm, 1.0)[..., None]
    # Near pi the antisymmetric part vanishes: the axis comes from the symmetric part,
    # (R + R^T) / 2 = cos I + (1 - cos) a a^T, with its sign from v.
    near_pi = (cos < 0) & (v_norm < 2e-3)
    if np.any(near_pi):
        S = (R[near_pi] + np.swapaxes(R[near_pi], -1, -2)) / 2.0
        c = cos[near_pi][..., None, None]
        M = (S - c * np.eye(3)) / (1.0 - c)
        k = np.argmax(np.diagonal(M, axis1=-2, axis2=-1), axis=-1)
        a = M[np.arange(len(k)), :, k] / np.sqrt(M[np.arange(len(k)), k, k])[..., None]
        sign = np.where(np.sum(a * v[near_pi], axis=-1) < 0, -1.0, 1.0)
        axis[near_pi] = a * sign[..., None]
    rvec = axis * theta[..., None]
    # Tiny angles: v / 2 = sin(theta) a is theta a to third order.
    return np.where(((v_norm < 2e-6) & (cos > 0))[..., None], v / 2.0, rvec)


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle (degrees) of the rotation between rotation matrices ``a`` and ``b`` ``[3, 3]``
    (NaN if either holds NaN)."""
    cos = (float(np.trace(np.asarray(a, np.float64).T @ np.asarray(b, np.float64))) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cos)))) if math.isfinite(cos) else math.nan


def distort_normalized(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply OpenCV distortion to normalized image points ``[..., 2]``."""
    return _distort(xy, *_dist5(dist))


def _distort(xy: np.ndarray, k1: Any, k2: Any, p1: Any, p2: Any, k3: Any) -> np.ndarray:
    """:func:`distort_normalized` with the coefficients given one by one (numbers, or arrays that
    broadcast against ``xy[..., 0]``: one camera's per view)."""
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return np.stack([xd, yd], axis=-1)


def undistort_normalized(xy_d: np.ndarray, dist: np.ndarray, iterations: int = 20, tolerance: float = 1e-12) -> np.ndarray:
    """Invert :func:`distort_normalized`, ``[..., 2]``: OpenCV's iterative undistortion
    (``cv2.undistortPointsIter``, the same fixed-point iteration) for at most ``iterations`` steps,
    stopping once the point distorts back to within ``tolerance`` of where it was seen."""
    import cv2

    xy_d = np.asarray(xy_d, dtype=np.float64)
    if xy_d.size == 0:
        return xy_d.copy()
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iterations, tolerance)
    coefficients = np.asarray(_dist5(dist), np.float64)
    eye = np.eye(3)  # normalized points in and out: identity intrinsics, no rectification
    out = cv2.undistortPointsIter(xy_d.reshape(-1, 1, 2), eye, coefficients, eye, eye, criteria)
    return out.reshape(xy_d.shape)


def project_points(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray, dist: np.ndarray | None = None) -> np.ndarray:
    """Project world points ``[..., N, 3]`` to pixels ``[..., N, 2]``.

    K ``[3, 3]``, R ``[3, 3]`` world-to-camera, t ``[3]`` metres, dist ``[5]`` or None.
    """
    cam = np.asarray(points, np.float64) @ np.asarray(R).T + np.asarray(t)
    xy = cam[..., :2] / cam[..., 2:3]
    if dist is not None and np.any(dist):
        xy = distort_normalized(xy, dist)
    return xy @ np.asarray(K)[:2, :2].T + np.asarray(K)[:2, 2]


def project_points_views(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """:func:`project_points` into V cameras in one go: world points ``[..., 3]``, K and R
    ``[V, 3, 3]``, t ``[V, 3]``, dist ``[V, 5]``; pixels ``[V, ..., 2]``."""
    pts = np.asarray(points, np.float64)
    if pts.ndim == 1:
        return project_points_views(pts[None], K, R, t, dist)[:, 0]
    V, lead = len(K), (1,) * (pts.ndim - 1)
    cam = pts[None] @ np.swapaxes(R, 1, 2).reshape(V, *lead[:-1], 3, 3) + t.reshape(V, *lead, 3)
    xy = cam[..., :2] / cam[..., 2:3]
    if np.any(dist):
        xy = _distort(xy, *(dist[:, i].reshape(V, *lead) for i in range(5)))
    return xy @ np.swapaxes(K[:, :2, :2], 1, 2).reshape(V, *lead[:-1], 2, 2) + K[:, :2, 2].reshape(V, *lead, 2)


def undistort_pixels(pixels: np.ndarray, K: np.ndarray, dist: np.ndarray | None) -> np.ndarray:
    """Pixels ``[..., 2]`` of a distorted image to ideal (undistorted) pixels with the same K."""
    K = np.asarray(K, np.float64)
    (a, b), (c, d) = K[:2, :2]
    inverse = np.array([[d, -b], [-c, a]]) / (a * d - b * c)  # the 2x2 inverse, without LAPACK's overhead
    xy_d = (np.asarray(pixels, np.float64) - K[:2, 2]) @ inverse.T
    xy = undistort_normalized(xy_d, dist) if dist is not None and np.any(dist) else xy_d
    return xy @ K[:2, :2].T + K[:2, 2]


def projection_matrix(K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``P = K [R | t]``, shape ``[3, 4]``."""
    return np.asarray(K, np.float64) @ np.hstack([np.asarray(R, np.float64), np.reshape(t, (3, 1))])


def triangulate_dlt(pixels: np.ndarray, weights: np.ndarray, P: np.ndarray, min_views: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-weighted multi-view DLT triangulation.

    pixels ``[V, N, 2]`` (undistorted), weights ``[V, N]`` (0 = not seen), P ``[V, 3, 4]``.
    Returns points ``[N, 3]`` and a mask ``[N]`` of points seen by at least ``min_views``
    views with positive weight (other points are NaN).
    """
    w = np.clip(np.nan_to_num(np.asarray(weights, np.float64)), 0.0, None)
    pixels = np.where(w[..., None] > 0, np.asarray(pixels, np.float64), 0.0)  # unseen may be NaN
    P = np.asarray(P, np.float64)
    # Two rows per view: x * P3 - P1 and y * P3 - P2, scaled by the view's weight.
    rows_x = pixels[..., 0:1] * P[:, None, 2, :] - P[:, None, 0, :]  # [V, N, 4]
    rows_y = pixels[..., 1:2] * P[:, None, 2, :] - P[:, None, 1, :]
    A = np.concatenate([rows_x, rows_y], axis=0)  # [2V, N, 4]
    # Unit rows, then the view's weight: far views do not dominate, confident ones do.
    norms = np.linalg.norm(A, axis=-1, keepdims=True)
    A = A / np.where(norms > 0, norms, 1.0) * np.concatenate([w, w], axis=0)[..., None]
    A = np.transpose(A, (1, 0, 2))  # [N, 2V, 4]
    # The right singular vector of A with the smallest singular value: the eigenvector of A^T A
    # with the smallest eigenvalue (eigh sorts them ascending), at half the cost of an SVD.
    _, vectors = np.linalg.eigh(np.swapaxes(A, 1, 2) @ A)
    X = vectors[:, :, 0]
    valid = (np.sum(w > 0, axis=0) >= min_views) & (np.abs(X[:, 3]) > 1e-12)
    points = np.full((X.shape[0], 3), np.nan)
    points[valid] = X[valid, :3] / X[valid, 3:4]
    return points, valid


def _dist5(dist: np.ndarray) -> np.ndarray:
    d = np.zeros(5)
    flat = np.ravel(np.asarray(dist, np.float64))[:5]
    d[: flat.size] = flat
    return d
