"""A small Qt-free mesh renderer (painter's algorithm, Lambert shading) with OpenCV.

Used for the body pictures and for drawing meshes over camera images.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.geometry import project_points


def render_mesh(
    image: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    color: tuple[int, int, int] = (200, 180, 160),
    alpha: float = 1.0,
) -> np.ndarray:
    """Draw the mesh ``vertices`` ``[V, 3]`` / ``faces`` ``[F, 3]`` (world) seen by camera
    (K, R, t) into a copy of ``image`` (BGR uint8). Faces are drawn back to front, back faces
    are culled, shading follows the angle to the camera; ``alpha`` < 1 blends with the image."""
    cam = vertices @ R.T + t
    tri = cam[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centres = tri.mean(axis=1)
    facing = np.einsum("ij,ij->i", normals, -centres)
    visible = (facing > 0) & (tri[..., 2] > 1e-3).all(axis=1)
    shade = facing[visible] / (np.linalg.norm(normals[visible], axis=1) * np.linalg.norm(centres[visible], axis=1) + 1e-12)
    pixels = project_points(vertices, K, R, t)[faces[visible]]
    order = np.argsort(-centres[visible, 2])  # far to near
    layer = image.copy()
    base = np.array(color, float)
    for i in order:
        level = 0.25 + 0.75 * shade[i]
        cv2.fillConvexPoly(
            layer, np.round(pixels[i] * 16).astype(np.int32), tuple(float(c) for c in base * level), cv2.LINE_AA, 4
        )
    if alpha >= 1.0:
        return layer
    return cv2.addWeighted(layer, alpha, image, 1.0 - alpha, 0.0)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, t) for an OpenCV camera at ``eye`` looking at ``target`` (``up``
    default: +Y, the body model's up)."""
    up = np.array([0.0, 1.0, 0.0]) if up is None else up
    z = target - eye
    z = z / np.linalg.norm(z)
    y = -(up - np.dot(up, z) * z)  # image y points down
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    R = np.stack([x, y, z])
    return R, -R @ eye
