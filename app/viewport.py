"""The 3D viewport: floor grid, camera frusta from the calibration, the 3D skeleton and the body
mesh (in the room when calibrated; the reference view's body at the origin otherwise). With
several people, each has their own mesh, skeleton and id label in their colour (app.people)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph.opengl as gl
from OpenGL.GL import GL_MODELVIEW_MATRIX, GL_PROJECTION_MATRIX, glGetDoublev
from PyQt6.QtCore import QPointF, QSize
from PyQt6.QtGui import QFont, QPainter, QVector3D
from PyQt6.QtOpenGL import QOpenGLPaintDevice
from PyQt6.QtWidgets import QWidget

from app.people import person_color, person_qcolor
from core.camera import Camera
from core.types import COCO17_BONES, Person

SKELETON_COLOR = (1.0, 0.55, 0.1, 1.0)
CAMERA_COLOR = (0.35, 0.8, 1.0, 1.0)
MESH_COLOR = (0.78, 0.72, 0.64, 1.0)
LABEL_ABOVE = 0.25  # metres above the top of the head


class BodyMeshData(gl.MeshData):
    """pyqtgraph's MeshData with vertex normals computed in one vectorised pass: its own loops
    over every vertex in Python, which for a body (6,890 vertices) took most of the GUI thread and,
    holding the interpreter, slowed the pipeline thread as well."""

    def vertexNormals(self, indexed: str | None = None) -> np.ndarray:
        normals: np.ndarray | None = getattr(self, "_vertexNormals", None)
        if normals is None:
            normals = self._vertexNormals = vertex_normals(self._vertexes, self._faces)
        if indexed is None:
            return normals
        if indexed == "faces":
            return normals[self._faces]
        raise ValueError(f"indexed must be None or 'faces', not {indexed!r}")


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals ``[n, 3]`` of a triangle mesh's vertices: the sum of the (area-weighted)
    normals of the faces around each vertex; zero for a vertex in no face."""
    v = np.asarray(vertices, np.float64)
    face = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    total = np.zeros_like(v)
    for corner in range(3):
        for axis in range(3):
            total[:, axis] += np.bincount(faces[:, corner], face[:, axis], minlength=len(v))
    length = np.linalg.norm(total, axis=1, keepdims=True)
    return (total / np.where(length > 0, length, 1.0)).astype(np.float32)


class IdLabel(gl.GLTextItem):
    """pyqtgraph's GLTextItem, centred on its position and painted into the OpenGL frame itself
    (GLTextItem paints on the widget, which a window grab, e.g. ``--screenshot``, leaves out)."""

    def paint(self) -> None:
        if not self.text:
            return
        self.setupGLState()
        view = self.view()
        w, h = view.width(), view.height()
        modelview, projection = glGetDoublev(GL_MODELVIEW_MATRIX), glGetDoublev(GL_PROJECTION_MATRIX)
        at = self._GLTextItem__project(self.pos, modelview, projection, [0, 0, w, h])
        ratio = view.devicePixelRatioF()
        device = QOpenGLPaintDevice(QSize(round(w * ratio), round(h * ratio)))
        device.setDevicePixelRatio(ratio)
        painter = QPainter(device)
        painter.setPen(self.color)
        painter.setFont(self.font)
        painter.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        width = painter.fontMetrics().horizontalAdvance(self.text)
        painter.drawText(QPointF(at.x() - width / 2, h - at.y()), self.text)
        painter.end()


@dataclass
class PersonItems:
    """What the viewport draws for one person (created on arrival, removed when they leave)."""

    mesh: gl.GLMeshItem
    bones: gl.GLLinePlotItem
    joints: gl.GLScatterPlotItem
    label: IdLabel

    def all(self) -> tuple[gl.GLGraphicsItem.GLGraphicsItem, ...]:
        return (self.mesh, self.bones, self.joints, self.label)


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
        self.people_items: dict[int, PersonItems] = {}
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
        _show_skeleton(self.bones, self.joints, keypoints3d)

    def set_mesh(self, vertices: np.ndarray | None, faces: np.ndarray | None) -> None:
        """Body mesh ``vertices`` ``[n, 3]`` (world metres, z up) with ``faces``, or None to hide."""
        self._show_mesh(self.mesh, vertices, faces)

    def _show_mesh(self, item: gl.GLMeshItem, vertices: np.ndarray | None, faces: np.ndarray | None) -> None:
        if vertices is None or faces is None:
            item.setVisible(False)
            return
        if self._faces_source is not faces:  # pyqtgraph lights the other side: reverse the winding once
            self._faces_source, self._faces = faces, np.ascontiguousarray(faces[:, ::-1])
        item.setMeshData(meshdata=BodyMeshData(vertexes=np.asarray(vertices, np.float32), faces=self._faces))
        item.setVisible(True)

    def set_people(self, people: Sequence[Person], faces: np.ndarray | None) -> None:
        """Each person's mesh (``person.mesh3d`` with the shared ``faces``), 3D skeleton and id
        label in their colour; the items of people who left are removed, the others reused."""
        present = {p.id for p in people}
        for gone in [i for i in self.people_items if i not in present]:
            for item in self.people_items.pop(gone).all():
                self.removeItem(item)
        for person in people:
            items = self.people_items.get(person.id) or self._add_person(person.id)
            self._show_mesh(items.mesh, person.mesh3d, faces)
            _show_skeleton(items.bones, items.joints, person.keypoints3d)
            top = _label_position(person.keypoints3d, person.mesh3d)
            if top is not None:
                items.label.setData(pos=top)
            items.label.setVisible(top is not None)

    def _add_person(self, person_id: int) -> PersonItems:
        color = (*(c / 255 for c in person_color(person_id)), 1.0)
        items = PersonItems(
            mesh=gl.GLMeshItem(meshdata=gl.MeshData(), smooth=True, shader="shaded", color=color, glOptions="opaque"),
            bones=gl.GLLinePlotItem(pos=np.zeros((2, 3)), mode="lines", color=color, width=4, antialias=True),
            joints=gl.GLScatterPlotItem(pos=np.zeros((1, 3)), size=6, color=(1, 1, 1, 1)),
            label=IdLabel(text=f"#{person_id}", color=person_qcolor(person_id), font=QFont("Sans", 14, QFont.Weight.Bold)),
        )
        for item in items.all():
            item.setVisible(False)
            self.addItem(item)
        self.people_items[person_id] = items
        return items

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


def _show_skeleton(bones: gl.GLLinePlotItem, joints: gl.GLScatterPlotItem, keypoints3d: np.ndarray | None) -> None:
    """Draw keypoints3d ``[17, 4]`` (world metres + confidence) with these items; None hides them."""
    if keypoints3d is None:
        bones.setVisible(False)
        joints.setVisible(False)
        return
    ok = np.isfinite(keypoints3d[:, :3]).all(axis=1) & (keypoints3d[:, 3] > 0)
    segments = [keypoints3d[[a, b], :3] for a, b in COCO17_BONES if ok[a] and ok[b]]
    if segments:
        bones.setData(pos=np.concatenate(segments))
    if ok.any():
        joints.setData(pos=keypoints3d[ok, :3])
    bones.setVisible(bool(segments))
    joints.setVisible(bool(ok.any()))


def _label_position(keypoints3d: np.ndarray | None, mesh3d: np.ndarray | None) -> np.ndarray | None:
    """Where a person's id label goes ``[3]``: above the top of their head (the highest confident
    keypoint, else the highest mesh vertex); None when neither is known."""
    points = np.zeros((0, 3))
    if keypoints3d is not None:
        ok = np.isfinite(keypoints3d[:, :3]).all(axis=1) & (keypoints3d[:, 3] > 0)
        points = keypoints3d[ok, :3]
    if not len(points) and mesh3d is not None:
        points = mesh3d[np.isfinite(mesh3d).all(axis=1)]
    if not len(points):
        return None
    top = points[np.argmax(points[:, 2])]
    return np.array([top[0], top[1], top[2] + LABEL_ABOVE], float)
