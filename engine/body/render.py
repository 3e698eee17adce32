"""A small Qt-free mesh renderer (painter's algorithm, Lambert shading) with OpenCV.

Used for the body pictures and for drawing meshes over camera images (live, with the coarse
display mesh of :func:`display_mesh`).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from core.geometry import project_points
from core.paths import DISPLAY_MESH

MESH_COLOR = (200, 180, 160)  # BGR
OVERLAY_COLOR = (150, 225, 160)  # BGR: a light green that stands out from skin, clothes and the skeleton


def render_mesh(
    image: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    color: tuple[int, int, int] = MESH_COLOR,
    alpha: float = 1.0,
) -> np.ndarray:
    """Draw the mesh ``vertices`` ``[V, 3]`` / ``faces`` ``[F, 3]`` (world) seen by camera
    (K, R, t) into a copy of ``image`` (BGR uint8); see :func:`draw_mesh`."""
    return draw_mesh(image, vertices @ R.T + t, project_points(vertices, K, R, t), faces, color, alpha)


def draw_mesh(
    image: np.ndarray,
    cam_vertices: np.ndarray,
    pixels: np.ndarray,
    faces: np.ndarray,
    color: tuple[int, int, int] = MESH_COLOR,
    alpha: float = 1.0,
) -> np.ndarray:
    """Draw a mesh given its vertices in the camera frame ``[V, 3]`` (for culling, shading and
    order) and where they land in ``image`` ``[V, 2]`` (pixels; any lens model). Faces are drawn
    back to front, back faces are culled, shading follows the angle to the camera; ``alpha`` < 1
    blends the mesh with the image. Returns a new image."""
    tri = cam_vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centres = tri.mean(axis=1)
    facing = np.einsum("ij,ij->i", normals, -centres)
    visible = (facing > 0) & (tri[..., 2] > 1e-3).all(axis=1) & np.isfinite(pixels[faces]).all(axis=(1, 2))
    shade = facing[visible] / (np.linalg.norm(normals[visible], axis=1) * np.linalg.norm(centres[visible], axis=1) + 1e-12)
    order = np.argsort(-centres[visible, 2])  # far to near
    corners = np.round(pixels[faces[visible][order]] * 16).astype(np.int32)  # 4 fractional bits
    colors = ((0.25 + 0.75 * shade[order])[:, None] * np.asarray(color, float)).tolist()
    layer = image.copy()
    for corner, c in zip(corners, colors, strict=True):
        cv2.fillConvexPoly(layer, corner, c, cv2.LINE_AA, 4)
    if alpha >= 1.0:
        return layer
    return cv2.addWeighted(layer, alpha, image, 1.0 - alpha, 0.0)


@lru_cache(maxsize=4)
def display_mesh(num_vertices: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(vertex indices, faces) of the coarse display mesh for a body with ``num_vertices``
    vertices (SMPL's topology), or None for another topology (draw the full mesh then)."""
    with np.load(DISPLAY_MESH) as data:
        if int(data["source_vertices"]) != num_vertices:
            return None
        return data["vertices"].astype(np.int64), data["faces"].astype(np.int64)


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
