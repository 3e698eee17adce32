"""Camera views: each paints its newest image (aspect kept) with the body on top: the 2D
skeleton, the body mesh (shaded, semi-transparent, hidden faces removed), or both."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QImage, QPainter, QPen
from PyQt6.QtWidgets import QGridLayout, QWidget

from core.types import COCO17_BONES, Keypoints2D, ViewEstimate
from engine.body.render import OVERLAY_COLOR, draw_mesh

LEFT = {1, 3, 5, 7, 9, 11, 13, 15}
COLOR_LEFT, COLOR_RIGHT, COLOR_CENTER = QColor(255, 140, 0), QColor(0, 170, 255), QColor(240, 240, 240)
OVERLAYS = ("skeleton", "mesh", "both")
MESH_ALPHA = 0.6


class CameraView(QWidget):
    """One camera: image scaled to fit; keypoints with confidence >= ``min_confidence`` and/or
    the body mesh drawn over it, as ``overlay`` says."""

    def __init__(self, name: str, min_confidence: float = 0.3, overlay: str = "both", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.min_confidence = min_confidence
        self.overlay = overlay
        self._image: QImage | None = None
        self._small: np.ndarray | None = None  # the frame at display size (BGR)
        self._scale = 1.0
        self._source_size = (1, 1)
        self._keypoints: np.ndarray | None = None
        self._mesh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # camera frame, pixels, faces
        self._note = ""
        self.setMinimumSize(120, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_frame(
        self,
        image: np.ndarray,
        keypoints: Keypoints2D | None,
        note: str = "",
        body: ViewEstimate | None = None,
    ) -> None:
        """Show ``image`` (BGR ``[H, W, 3]``) with keypoints in its own pixel coordinates and the
        view's body mesh (``body.mesh_cam`` / ``mesh_px`` / ``mesh_faces``) when there is one."""
        h, w = image.shape[:2]
        self._source_size = (w, h)
        self._scale = scale = min(self.width() / w, self.height() / h, 1.0)
        self._small = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        self._keypoints = None if keypoints is None else keypoints.points.copy()
        self._mesh = _mesh_of(body)
        self._note = note
        self._compose()

    def set_missing(self, note: str) -> None:
        """No picture from this camera (disconnected, not in this set for too long)."""
        self._image, self._small, self._keypoints, self._mesh = None, None, None, None
        self._note = note
        self.update()

    def set_overlay(self, overlay: str) -> None:
        if overlay not in OVERLAYS:
            raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}, not {overlay!r}")
        self.overlay = overlay
        self._compose()

    @property
    def shows_mesh(self) -> bool:
        return self._mesh is not None and self.overlay in ("mesh", "both")

    def _compose(self) -> None:
        if self._small is None:
            return
        picture = self._small
        if self.shows_mesh:
            assert self._mesh is not None
            cam, px, faces = self._mesh
            picture = draw_mesh(picture, cam, px * self._scale, faces, OVERLAY_COLOR, MESH_ALPHA)
        rgb = np.ascontiguousarray(picture[..., ::-1])
        self._image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()
        self.update()

    def target_rect(self) -> QRectF:
        """Where the image is drawn inside the widget (aspect kept, centred)."""
        w, h = self._source_size
        scale = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2, w * scale, h * scale)

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(25, 25, 28))
        rect = self.target_rect()
        if self._image is not None:
            painter.drawImage(rect, self._image)
            if self._keypoints is not None and self.overlay in ("skeleton", "both"):
                self._draw_skeleton(painter, rect)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(8, 18, f"{self.name}  {self._note}".strip())
        if self._image is None and self._note:
            painter.setPen(QColor(230, 150, 60))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._note)
        painter.end()

    def _draw_skeleton(self, painter: QPainter, rect: QRectF) -> None:
        assert self._keypoints is not None
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        scale = rect.width() / self._source_size[0]
        pts = [QPointF(rect.x() + x * scale, rect.y() + y * scale) for x, y, _ in self._keypoints]
        ok = self._keypoints[:, 2] >= self.min_confidence
        for a, b in COCO17_BONES:
            if ok[a] and ok[b]:
                painter.setPen(QPen(_color(a, b), 3))
                painter.drawLine(pts[a], pts[b])
        painter.setPen(Qt.PenStyle.NoPen)
        for i, p in enumerate(pts):
            if ok[i]:
                painter.setBrush(_color(i, i))
                painter.drawEllipse(p, 4, 4)


def _color(a: int, b: int) -> QColor:
    if a in LEFT and b in LEFT:
        return COLOR_LEFT
    if a not in LEFT and b not in LEFT and a > 0 and b > 0:
        return COLOR_RIGHT
    return COLOR_CENTER


class CameraGrid(QWidget):
    """Any number of camera views, arranged in the grid that shows the images largest."""

    def __init__(self, names: list[str], aspect: float, overlay: str = "both", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.aspect = aspect  # image width / height
        self.views = {name: CameraView(name, overlay=overlay) for name in names}
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._columns = 0
        self._arrange()

    def best_columns(self, width: int, height: int) -> int:
        n = len(self.views)

        def shown_area(cols: int) -> float:
            rows = math.ceil(n / cols)
            cell_w, cell_h = width / cols, height / rows
            scale = min(cell_w / self.aspect, cell_h)
            return scale * scale

        return max(range(1, n + 1), key=shown_area)

    def resizeEvent(self, event: object) -> None:
        self._arrange()

    def _arrange(self) -> None:
        cols = self.best_columns(max(self.width(), 1), max(self.height(), 1))
        if cols == self._columns:
            return
        self._columns = cols
        for i, view in enumerate(self.views.values()):
            self._layout.removeWidget(view)
            self._layout.addWidget(view, i // cols, i % cols)


def _mesh_of(body: ViewEstimate | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(camera-frame vertices, pixels, faces) of a view's body mesh, None unless it has all three."""
    if body is None or body.mesh_cam is None or body.mesh_px is None or body.mesh_faces is None:
        return None
    return body.mesh_cam, body.mesh_px, body.mesh_faces
