"""The wizard's drawings: a camera image with the board over it, and the graph of camera links."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QImage, QPainter, QPen
from PyQt6.QtWidgets import QWidget

from calibration.board import Detection
from calibration.collector import MIN_SHARED

LIGHTS = {"green": QColor(40, 180, 70), "yellow": QColor(230, 190, 30), "red": QColor(220, 50, 40)}


class BoardView(QWidget):
    """A camera image with the board's corners and (optionally) the coverage cells drawn over it."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.setMinimumSize(200, 130)
        self._image: QImage | None = None
        self._size = (1, 1)
        self._corners: np.ndarray | None = None
        self._coverage: np.ndarray | None = None
        self.note = ""

    def show_frame(self, image: np.ndarray, detection: Detection | None, coverage: np.ndarray | None, note: str) -> None:
        h, w = image.shape[:2]
        scale = min(640 / w, 1.0)
        small = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(small[..., ::-1])
        self._image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()
        self._size = (w, h)
        self._corners = None if detection is None else detection.corners.copy()
        self._coverage, self.note = coverage, note
        self.update()

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(25, 25, 28))
        w, h = self._size
        s = min(self.width() / w, self.height() / h)
        rect = QRectF((self.width() - w * s) / 2, (self.height() - h * s) / 2, w * s, h * s)
        if self._image is not None:
            painter.drawImage(rect, self._image)
        if self._coverage is not None:
            rows, cols = self._coverage.shape
            for r in range(rows):
                for c in range(cols):
                    if self._coverage[r, c] > 0:
                        cell = QRectF(rect.x() + c * rect.width() / cols, rect.y() + r * rect.height() / rows,
                                      rect.width() / cols, rect.height() / rows)  # fmt: skip
                        painter.fillRect(cell, QColor(40, 200, 90, 60))
        if self._corners is not None:
            painter.setPen(QPen(QColor(255, 60, 200), 2))
            for x, y in self._corners:
                painter.drawEllipse(QPointF(rect.x() + x * s, rect.y() + y * s), 3, 3)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(8, 18, f"{self.name}  {self.note}")
        painter.end()


class LinkGraph(QWidget):
    """Cameras on a circle; a line for each pair that saw the board together, green once strong."""

    def __init__(self, names: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.names = names
        self.links: dict[tuple[str, str], int] = {}
        self.setMinimumSize(220, 220)

    def set_links(self, links: dict[tuple[str, str], int]) -> None:
        self.links = links
        self.update()

    def positions(self) -> dict[str, QPointF]:
        cx, cy, r = self.width() / 2, self.height() / 2, 0.36 * min(self.width(), self.height())
        n = len(self.names)
        angles = [2 * math.pi * i / n - math.pi / 2 for i in range(n)]
        return {name: QPointF(cx + r * math.cos(a), cy + r * math.sin(a)) for name, a in zip(self.names, angles, strict=True)}

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(35, 37, 42))
        pos = self.positions()
        for (a, b), count in self.links.items():
            if count == 0:
                continue
            colour = LIGHTS["green"] if count >= MIN_SHARED else LIGHTS["yellow"]
            painter.setPen(QPen(colour, 2 + min(count, 8)))
            painter.drawLine(pos[a], pos[b])
            middle = pos[a] * 0.65 + pos[b] * 0.35  # off-centre: crossing links keep their labels apart
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(middle, str(count))
        for name, p in pos.items():
            painter.setPen(QPen(QColor(255, 255, 255), 1))
            painter.setBrush(QColor(60, 120, 200))
            painter.drawEllipse(p, 16, 16)
            painter.drawText(QRectF(p.x() - 40, p.y() + 16, 80, 18), Qt.AlignmentFlag.AlignCenter, name)
        painter.end()
