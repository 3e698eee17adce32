"""Camera views: each paints its newest image (aspect kept) with the bodies on top: the 2D
skeleton, the body mesh (shaded, semi-transparent, hidden faces removed), or both. With several
people each is drawn in their colour (app.people) with their id by the head; a result without
people (keypoints only) is drawn as one body in the left/right colours.

Privacy: in mesh-only mode a view paints the bodies on a neutral dark background and no pixel of the
camera image; with face blur the faces of the people it sees are blurred (core.privacy). Both are
set per view (its context menu) or for all views at once (the main window's View menu)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QContextMenuEvent, QFont, QImage, QPainter, QPen
from PyQt6.QtWidgets import QGridLayout, QMenu, QWidget

from app.people import person_color, person_qcolor
from core.privacy import blur_faces
from core.types import COCO17_BONES, Keypoints2D, Person, ViewEstimate
from engine.body.render import OVERLAY_COLOR, draw_mesh

LEFT = {1, 3, 5, 7, 9, 11, 13, 15}
COLOR_LEFT, COLOR_RIGHT, COLOR_CENTER = QColor(255, 140, 0), QColor(0, 170, 255), QColor(240, 240, 240)
OVERLAYS = ("skeleton", "mesh", "both")
MESH_ALPHA = 0.6
LABEL_TEXT = QColor(20, 20, 24)
OUTLINE = QColor(15, 15, 18, 170)  # under a person's bones, so they stand out on their own mesh
NEUTRAL_BGR = (46, 42, 40)  # mesh-only: the background the bodies are drawn on (dark grey, no camera pixel)

Mesh = tuple[np.ndarray, np.ndarray, np.ndarray]  # camera-frame vertices [n, 3], pixels [n, 2], faces [f, 3]


@dataclass(frozen=True)
class Drawn:
    """One body over a view: keypoints ``[17, 3]`` (image pixels) and mesh, drawn in the colour
    of track ``id`` with an id label, or in the single-person colours when ``id`` is None."""

    id: int | None
    keypoints: np.ndarray | None
    mesh: Mesh | None


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
        self.bodies: list[Drawn] = []
        self._note = ""
        self.mesh_only = False  # privacy: the bodies on a neutral background, no camera pixels
        self.blur_faces = False  # privacy: faces blurred in the image
        self.setMinimumSize(120, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_frame(
        self,
        image: np.ndarray,
        keypoints: Keypoints2D | None,
        note: str = "",
        body: ViewEstimate | None = None,
        people: Sequence[Person] = (),
    ) -> None:
        """Show ``image`` (BGR ``[H, W, 3]``) with keypoints in its own pixel coordinates and the
        view's body mesh (``body.mesh_cam`` / ``mesh_px`` / ``mesh_faces``) when there is one.
        With ``people`` each person this camera saw is drawn instead (``keypoints`` and ``body``,
        which describe the first of them, are then not drawn again)."""
        h, w = image.shape[:2]
        self._source_size = (w, h)
        self._scale = scale = min(self.width() / w, self.height() / h, 1.0)
        self._small = shrink(image, (max(1, int(w * scale)), max(1, int(h * scale))))
        if people:
            seen = [_drawn(p, self.name) for p in people if self.name in p.keypoints2d or self.name in p.views]
            self.bodies = sorted(seen, key=lambda b: -_depth(b.mesh))  # far to near: the nearest is drawn on top
        else:
            self.bodies = [Drawn(None, None if keypoints is None else keypoints.points.copy(), _mesh_of(body))]
        self._note = note
        self._compose()

    def set_missing(self, note: str) -> None:
        """No picture from this camera (disconnected, not in this set for too long)."""
        self._image, self._small, self.bodies = None, None, []
        self._note = note
        self.update()

    def set_overlay(self, overlay: str) -> None:
        if overlay not in OVERLAYS:
            raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}, not {overlay!r}")
        self.overlay = overlay
        self._compose()

    def set_mesh_only(self, mesh_only: bool) -> None:
        """Privacy: draw the bodies on a neutral background instead of the camera image."""
        self.mesh_only = mesh_only
        self._compose()

    def set_blur_faces(self, blur: bool) -> None:
        """Privacy: blur the faces of the people this view sees."""
        self.blur_faces = blur
        self._compose()

    def contextMenuEvent(self, event: QContextMenuEvent | None) -> None:
        menu = self.privacy_menu()
        if event is not None:
            menu.exec(event.globalPos())

    def privacy_menu(self) -> QMenu:
        """This view's own privacy switches (its context menu)."""
        menu = QMenu(self)
        mesh = menu.addAction("Mesh only (no camera picture)")
        blur = menu.addAction("Blur faces")
        assert mesh is not None and blur is not None
        for action, on, call in ((mesh, self.mesh_only, self.set_mesh_only), (blur, self.blur_faces, self.set_blur_faces)):
            action.setCheckable(True)
            action.setChecked(on)
            action.toggled.connect(call)
        blur.setEnabled(not self.mesh_only)
        return menu

    @property
    def shows_mesh(self) -> bool:
        return any(b.mesh is not None for b in self.bodies) and self.overlay in ("mesh", "both")

    def _compose(self) -> None:
        if self._small is None:
            return
        picture = self._background(self._small)
        if self.shows_mesh:
            for drawn in self.bodies:
                if drawn.mesh is None:
                    continue
                cam, px, faces = drawn.mesh
                color = OVERLAY_COLOR if drawn.id is None else person_color(drawn.id)[::-1]  # BGR
                picture = draw_mesh(picture, cam, px * self._scale, faces, color, MESH_ALPHA)
        rgb = np.ascontiguousarray(picture[..., ::-1])
        self._image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()
        self.update()

    def _background(self, small: np.ndarray) -> np.ndarray:
        """What the bodies are drawn on: the camera image (faces blurred when asked), or in
        mesh-only mode a neutral background of its size."""
        if self.mesh_only:
            return np.full_like(small, NEUTRAL_BGR)
        if self.blur_faces:
            people = [b.keypoints * np.array([self._scale, self._scale, 1.0]) for b in self.bodies if b.keypoints is not None]
            return blur_faces(small, people)
        return small

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
            if self.overlay in ("skeleton", "both"):
                for drawn in self.bodies:
                    if drawn.keypoints is not None:
                        self._draw_skeleton(painter, rect, drawn)
            for drawn in self.bodies:
                if drawn.id is not None:
                    self._draw_label(painter, rect, drawn)
        painter.setPen(QColor(255, 255, 255))
        privacy = "  mesh only" if self.mesh_only else "  faces blurred" if self.blur_faces else ""
        painter.drawText(8, 18, f"{self.name}  {self._note}{privacy}".strip())
        if self._image is None and self._note:
            painter.setPen(QColor(230, 150, 60))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._note)
        painter.end()

    def _draw_skeleton(self, painter: QPainter, rect: QRectF, drawn: Drawn) -> None:
        assert drawn.keypoints is not None
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        scale = rect.width() / self._source_size[0]
        pts = [QPointF(rect.x() + x * scale, rect.y() + y * scale) for x, y, _ in drawn.keypoints]
        ok = drawn.keypoints[:, 2] >= self.min_confidence
        bones = [(pts[a], pts[b], _color(a, b)) for a, b in COCO17_BONES if ok[a] and ok[b]]
        if drawn.id is not None:  # a person's bones in their colour, outlined; the joints keep left/right
            painter.setPen(QPen(OUTLINE, 5))
            for p, q, _ in bones:
                painter.drawLine(p, q)
            bones = [(p, q, person_qcolor(drawn.id)) for p, q, _ in bones]
        for p, q, color in bones:
            painter.setPen(QPen(color, 3))
            painter.drawLine(p, q)
        painter.setPen(Qt.PenStyle.NoPen)
        for i, p in enumerate(pts):
            if ok[i]:
                painter.setBrush(_color(i, i))
                painter.drawEllipse(p, 4, 4)

    def _draw_label(self, painter: QPainter, rect: QRectF, drawn: Drawn) -> None:
        """ "#id" on a tag of the person's colour, just above the top of their body in this view."""
        top = self._top_of(drawn)
        if top is None:
            return
        scale = rect.width() / self._source_size[0]
        x, y = rect.x() + top[0] * scale, rect.y() + top[1] * scale
        text = f"#{drawn.id}"
        painter.setFont(QFont(painter.font().family(), 10, QFont.Weight.Bold))
        width = painter.fontMetrics().horizontalAdvance(text) + 10
        tag = QRectF(x - width / 2, max(rect.y(), y - 30), width, 18)
        assert drawn.id is not None
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(person_qcolor(drawn.id))
        painter.drawRoundedRect(tag, 4, 4)
        painter.setPen(LABEL_TEXT)
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def _top_of(self, drawn: Drawn) -> tuple[float, float] | None:
        """The highest point of a body in the image (source pixels): its top confident keypoint,
        else the top of its mesh; None when neither is there."""
        if drawn.keypoints is not None:
            ok = drawn.keypoints[:, 2] >= self.min_confidence
            if ok.any():
                points = drawn.keypoints[ok]
                return float(points[:, 0].mean()), float(points[:, 1].min())
        if drawn.mesh is not None:
            px = drawn.mesh[1][np.isfinite(drawn.mesh[1]).all(axis=1)]
            if len(px):
                return float(px[:, 0].mean()), float(px[:, 1].min())
        return None


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


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (w, h) for display: halved with a Gaussian pyramid while that
    stays above the size, then linear (within about 1 grey level of area averaging, at a quarter
    of its cost: the views are redrawn for every result, on the GUI thread)."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.pyrDown(image)
    return image if (image.shape[1], image.shape[0]) == size else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _drawn(person: Person, camera: str) -> Drawn:
    keypoints = person.keypoints2d.get(camera)
    return Drawn(person.id, None if keypoints is None else keypoints.points.copy(), _mesh_of(person.views.get(camera)))


def _depth(mesh: Mesh | None) -> float:
    """A mesh's mean distance along the camera axis (m), to draw far bodies first."""
    return 0.0 if mesh is None else float(np.nanmean(mesh[0][:, 2]))


def _mesh_of(body: ViewEstimate | None) -> Mesh | None:
    """(camera-frame vertices, pixels, faces) of a view's body mesh, None unless it has all three."""
    if body is None or body.mesh_cam is None or body.mesh_px is None or body.mesh_faces is None:
        return None
    return body.mesh_cam, body.mesh_px, body.mesh_faces
