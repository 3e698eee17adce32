"""The 3D viewport: floor grid, camera frusta from the calibration, the 3D skeleton and the body
mesh (in the room when calibrated; the reference view's body at the origin otherwise)."""

from __future__ import annotations

import numpy as np
import pyqtgraph.opengl as gl
from PyQt6.QtGui import QVector3D
from PyQt6.QtWidgets import QWidget

from core.camera import Camera
from core.types import COCO17_BONES

SKELETON_COLOR = (1.0, 0.55, 0.1, 1.0)
CAMERA_COLOR = (0.35, 0.8, 1.0, 1.0)
MESH_COLOR = (0.78, 0.72, 0.64, 1.0)


def frustum_lines(camera: Camera, depth: float = 0.4) -> np.ndarray:
    """Line segments ``[16, 3]`` (pairs) drawing the camera as a pyramid in world coordinates."""
    w, h = camera.image_size
    assert camera.K is not None and camera.R is not None
    corners_px = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    rays = np.linalg.solve(camera.K, np.hstack([corners_px, np.ones((4, 1))]).T).T * depth
    corners = rays @ camera.R + camera.center  # camera -> world: R^T x + C
    c = camera.center
    segments = []
    for i in range(4):
        segments += [c, corners[i], corners[i], corners[(i + 1) % 4]]
    return np.array(segments)


class Viewport3D(gl.GLViewWidget):
    """Orbit with the left mouse button, pan with the middle one, zoom with the wheel."""

    def __init__(self, cameras: list[Camera], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackgroundColor((30, 32, 38))
        grid = gl.GLGridItem(size=QVector3D(10, 10, 1))
        grid.setSpacing(0.5, 0.5, 1)
        grid.setColor((140, 140, 150, 120))
        self.addItem(grid)
        axis = gl.GLAxisItem(size=QVector3D(0.5, 0.5, 0.5))
        self.addItem(axis)
        self.camera_items: list[gl.GLLinePlotItem] = []
        self._add_cameras(cameras)
        self.bones = gl.GLLinePlotItem(pos=np.zeros((2, 3)), mode="lines", color=SKELETON_COLOR, width=4, antialias=True)
        self.joints = gl.GLScatterPlotItem(pos=np.zeros((1, 3)), size=9, color=(1, 1, 1, 1))
        self.bones.setVisible(False)
        self.joints.setVisible(False)
        self.mesh = gl.GLMeshItem(meshdata=gl.MeshData(), smooth=True, shader="shaded", color=MESH_COLOR, glOptions="opaque")
        self.mesh.setVisible(False)
        self._faces_source: np.ndarray | None = None
        self._faces = np.zeros((0, 3), np.int64)
        self.addItem(self.mesh)
        self.addItem(self.bones)
        self.addItem(self.joints)
        self._frame_room([c for c in cameras if c.calibrated])

    def _add_cameras(self, cameras: list[Camera]) -> None:
        for camera in cameras:
            if camera.calibrated:
                item = gl.GLLinePlotItem(pos=frustum_lines(camera), mode="lines", color=CAMERA_COLOR, width=2, antialias=True)
                self.addItem(item)
                self.camera_items.append(item)

    def set_cameras(self, cameras: list[Camera]) -> None:
        """Show another calibration's cameras and frame the room they span."""
        for item in self.camera_items:
            self.removeItem(item)
        self.camera_items = []
        self._add_cameras(cameras)
        self._frame_room([c for c in cameras if c.calibrated])

    def set_skeleton(self, keypoints3d: np.ndarray | None) -> None:
        """keypoints3d ``[17, 4]`` (world metres + confidence), or None to hide."""
        if keypoints3d is None:
            self.bones.setVisible(False)
            self.joints.setVisible(False)
            return
        ok = np.isfinite(keypoints3d[:, :3]).all(axis=1) & (keypoints3d[:, 3] > 0)
        segments = [keypoints3d[[a, b], :3] for a, b in COCO17_BONES if ok[a] and ok[b]]
        if segments:
            self.bones.setData(pos=np.concatenate(segments))
        if ok.any():
            self.joints.setData(pos=keypoints3d[ok, :3])
        self.bones.setVisible(bool(segments))
        self.joints.setVisible(bool(ok.any()))

    def set_mesh(self, vertices: np.ndarray | None, faces: np.ndarray | None) -> None:
        """Body mesh ``vertices`` ``[n, 3]`` (world metres, z up) with ``faces``, or None to hide."""
        if vertices is None or faces is None:
            self.mesh.setVisible(False)
            return
        if self._faces_source is not faces:  # pyqtgraph lights the other side: reverse the winding once
            self._faces_source, self._faces = faces, np.ascontiguousarray(faces[:, ::-1])
        self.mesh.setMeshData(meshdata=gl.MeshData(vertexes=np.asarray(vertices, np.float32), faces=self._faces))
        self.mesh.setVisible(True)

    def _frame_room(self, cameras: list[Camera]) -> None:
        if cameras:
            centers = np.array([c.center for c in cameras])
            middle = centers.mean(axis=0)
            radius = float(np.linalg.norm(centers[:, :2] - middle[:2], axis=1).max())
            self.setCameraPosition(
                pos=QVector3D(float(middle[0]), float(middle[1]), 0.9), distance=2.0 * max(radius, 1.0), elevation=22, azimuth=-60
            )
        else:
            self.setCameraPosition(pos=QVector3D(0, 0, 0.9), distance=6, elevation=25, azimuth=-60)
