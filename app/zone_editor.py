"""Room -> Zones...: the room's floor seen from above (metres, world x right, y up, the cameras
where their calibration puts them) with the monitoring zones drawn on it. Click to place the points
of a new zone, double-click or Enter to close it, give it a name, a kind and a height, add it;
select a zone in the list to delete it; Save writes the zones into the room file
(monitoring.config.save_zones) and hands them to ``on_saved`` (the running monitor)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QPointF, Qt
from PyQt6.QtGui import QBrush, QColor, QKeyEvent, QPen, QPolygonF
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGraphicsPolygonItem,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.camera import Camera
from core.errors import AppError
from monitoring.config import ZONE_KINDS, Zone, save_zones

KIND_COLORS = {  # RGB
    "bed": (66, 135, 245),
    "chair": (60, 180, 120),
    "door": (200, 200, 80),
    "bathroom": (120, 200, 230),
    "no-go": (220, 50, 50),
}
DRAFT_COLOR = (255, 255, 255)
MARGIN_M = 1.0  # floor shown around the cameras and the zones
NEEDS_CALIBRATION = "Zones need a calibrated room: load the room's calibration first (Room -> Load calibration)."


def kind_qcolor(kind: str, alpha: int = 255) -> QColor:
    return QColor(*KIND_COLORS.get(kind, (200, 200, 200)), alpha)


def floor_extent(cameras: Sequence[Camera], zones: Sequence[Zone]) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of the floor to show: the cameras' and the zones' points with a margin."""
    points = [c.center[:2] for c in cameras if c.calibrated] + [p for z in zones for p in z.polygon]
    if not points:
        return -3.0, 3.0, -3.0, 3.0
    xy = np.array(points, float)
    (x0, y0), (x1, y1) = xy.min(axis=0) - MARGIN_M, xy.max(axis=0) + MARGIN_M
    return float(x0), float(x1), float(y0), float(y1)


class FloorPlot(pg.PlotWidget):
    """The top view: equal aspect, metres, a grid; cameras as labelled markers."""

    def __init__(self, cameras: Sequence[Camera], parent: QWidget | None = None) -> None:
        super().__init__(parent, background=(30, 32, 38))
        item = self.getPlotItem()
        assert item is not None
        item.setAspectLocked(True)
        item.showGrid(x=True, y=True, alpha=0.35)
        item.setLabel("bottom", "x", units="m")
        item.setLabel("left", "y", units="m")
        item.setMenuEnabled(False)
        item.hideButtons()  # no autoscale button: the view is fixed while drawing
        box = self.view_box
        box.setMouseEnabled(x=False, y=False)  # clicks place points; the view stays put
        calibrated = [c for c in cameras if c.calibrated]
        if calibrated:
            centers = np.array([c.center[:2] for c in calibrated])
            self.addItem(pg.ScatterPlotItem(centers[:, 0], centers[:, 1], symbol="t", size=14,
                                            brush=pg.mkBrush(90, 205, 255), pen=pg.mkPen(20, 20, 20)))  # fmt: skip
            for camera, (x, y) in zip(calibrated, centers, strict=True):
                label = pg.TextItem(camera.name, color=(90, 205, 255), anchor=(0.5, -0.4))
                label.setPos(float(x), float(y))
                self.addItem(label)

    @property
    def view_box(self) -> pg.ViewBox:
        item = self.getPlotItem()
        assert item is not None
        box = item.getViewBox()
        assert isinstance(box, pg.ViewBox)
        return box

    def floor_point(self, scene_pos: QPointF) -> tuple[float, float]:
        point = self.view_box.mapSceneToView(scene_pos)
        return float(point.x()), float(point.y())

    def widget_point(self, x: float, y: float) -> QPointF:
        """Where floor point (x, y) is in the widget (for tests: where to click)."""
        return QPointF(self.mapFromScene(self.view_box.mapViewToScene(QPointF(x, y))))


class ZoneEditor(QDialog):
    """Edit ``zones`` over the floor seen by ``cameras``; saved into ``room_file``."""

    def __init__(
        self,
        cameras: Sequence[Camera],
        zones: Sequence[Zone],
        room_file: Path | None,
        on_saved: Callable[[list[Zone]], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Zones")
        self.resize(1000, 700)
        self.zones: list[Zone] = list(zones)
        self.room_file = room_file
        self.on_saved = on_saved
        self.calibrated = any(c.calibrated for c in cameras)
        self.draft: list[tuple[float, float]] = []
        self.closed = False  # the draft polygon is closed: it waits for its name, kind and height
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.plot = FloorPlot(cameras)
        self._zone_items: list[object] = []
        self._draft_line = pg.PlotDataItem(pen=pg.mkPen(DRAFT_COLOR, width=2, style=Qt.PenStyle.DashLine),
                                           symbol="o", symbolSize=7, symbolBrush=DRAFT_COLOR)  # fmt: skip
        self.plot.addItem(self._draft_line)
        scene = self.plot.scene()
        assert scene is not None
        scene.sigMouseClicked.connect(self._clicked)
        layout = QHBoxLayout(self)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self._side(), 0)
        x0, x1, y0, y1 = floor_extent(cameras, self.zones)
        self.plot.view_box.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        self._redraw()
        if not self.calibrated:
            self.message.setText(NEEDS_CALIBRATION)
            self.message.setStyleSheet("color: #b35c00")
        elif room_file is None:
            self.message.setText("No room file: the zones can be tried out but not saved (start with --room).")
        else:
            self.message.setText("Click the floor to place a new zone's corners; double-click or Enter closes it.")
        self._update_buttons()

    def _side(self) -> QWidget:
        side = QWidget()
        side.setFixedWidth(280)
        column = QVBoxLayout(side)
        column.addWidget(self.message)
        column.addWidget(QLabel("Zones"))
        self.list = QListWidget()
        self.list.currentRowChanged.connect(lambda _row: self._selected())
        column.addWidget(self.list, 1)
        self.delete_button = QPushButton("Delete zone")
        self.delete_button.clicked.connect(self.delete_selected)
        column.addWidget(self.delete_button)
        column.addWidget(QLabel("New zone"))
        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.kind_box = QComboBox()
        self.kind_box.addItems(list(ZONE_KINDS))
        self.height_box = QDoubleSpinBox()
        self.height_box.setRange(0.0, 3.0)
        self.height_box.setSingleStep(0.05)
        self.height_box.setSuffix(" m")
        form.addRow("Name", self.name_edit)
        form.addRow("Kind", self.kind_box)
        form.addRow("Height", self.height_box)
        column.addLayout(form)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add zone")
        self.add_button.clicked.connect(self.add_zone)
        self.clear_button = QPushButton("Clear drawing")
        self.clear_button.clicked.connect(self.clear_draft)
        row.addWidget(self.clear_button)
        row.addWidget(self.add_button)
        column.addLayout(row)
        column.addStretch(1)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save")
        self.save_button.setToolTip("Write the zones into the room file; the running monitor uses them at once")
        self.save_button.clicked.connect(self.save)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        row.addWidget(close)
        row.addWidget(self.save_button)
        column.addLayout(row)
        return side

    # drawing

    def _clicked(self, event: object) -> None:
        if not self.calibrated or self.closed:
            return
        if event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return
        if event.double():  # type: ignore[attr-defined]
            self.close_draft()
            return
        self.add_point(*self.plot.floor_point(event.scenePos()))  # type: ignore[attr-defined]

    def add_point(self, x: float, y: float) -> None:
        self.draft.append((round(x, 3), round(y, 3)))
        self._show_draft()

    def close_draft(self) -> bool:
        """Close the polygon being drawn (3 points at least); its name, kind and height come next."""
        if len(self.draft) < 3:
            self.message.setText("A zone needs at least 3 corners.")
            return False
        self.closed = True
        self._show_draft()
        self.message.setText("Name the zone, choose its kind and height, then Add zone.")
        self.name_edit.setFocus()
        self._update_buttons()
        return True

    def clear_draft(self) -> None:
        self.draft, self.closed = [], False
        self._show_draft()
        self._update_buttons()

    def _show_draft(self) -> None:
        points = self.draft + (self.draft[:1] if self.closed else [])
        xy = np.array(points, float).reshape(-1, 2)
        self._draft_line.setData(xy[:, 0], xy[:, 1])
        self._update_buttons()

    def add_zone(self) -> bool:
        """The closed draft becomes a zone with the form's name, kind and height."""
        name = self.name_edit.text().strip()
        if not self.closed:
            self.message.setText("Close the zone first (double-click or Enter).")
            return False
        if not name or name in [z.name for z in self.zones]:
            self.message.setText("Give the zone a name that no other zone has.")
            return False
        zone = Zone(name, self.kind_box.currentText(), np.array(self.draft, float), float(self.height_box.value()))
        self.zones.append(zone)
        self.name_edit.clear()
        self.clear_draft()
        self._redraw()
        self.list.setCurrentRow(len(self.zones) - 1)
        self.message.setText(f"Zone {name!r} added; Save writes the zones into the room file.")
        return True

    def delete_selected(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.zones):
            gone = self.zones.pop(row)
            self._redraw()
            self.message.setText(f"Zone {gone.name!r} deleted; Save writes the zones into the room file.")

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        if event is not None and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.draft and not self.closed:
            self.close_draft()
            return
        if event is not None and event.key() == Qt.Key.Key_Escape and self.draft:
            self.clear_draft()
            return
        if event is not None and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.closed:
            self.add_zone()
            return
        super().keyPressEvent(event)

    # zones

    def _redraw(self) -> None:
        """The list and the drawing after the zones changed (the selection kept where it can be)."""
        current = self.list.currentRow()
        self.list.blockSignals(True)
        self.list.clear()
        for zone in self.zones:
            self.list.addItem(f"{zone.name}  ({zone.kind}, {zone.height:.2f} m)")
        self.list.setCurrentRow(min(current, len(self.zones) - 1))
        self.list.blockSignals(False)
        self._selected()

    def _zone_graphics(self, zone: Zone, selected: bool) -> list[object]:
        polygon = QGraphicsPolygonItem(QPolygonF([QPointF(float(x), float(y)) for x, y in zone.polygon]))
        polygon.setBrush(QBrush(kind_qcolor(zone.kind, 110 if selected else 60)))
        pen = QPen(kind_qcolor(zone.kind), 3 if selected else 1.5)
        pen.setCosmetic(True)  # a width in screen pixels, whatever the zoom
        polygon.setPen(pen)
        centre = zone.polygon.mean(axis=0)
        label = pg.TextItem(zone.name, color=(240, 240, 240), anchor=(0.5, 0.5))
        label.setPos(float(centre[0]), float(centre[1]))
        for item in (polygon, label):
            self.plot.addItem(item)
        return [polygon, label]

    def _selected(self) -> None:
        for item in self._zone_items:
            self.plot.removeItem(item)
        current = self.list.currentRow()
        self._zone_items = [g for i, z in enumerate(self.zones) for g in self._zone_graphics(z, i == current)]
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.delete_button.setEnabled(0 <= self.list.currentRow() < len(self.zones))
        self.add_button.setEnabled(self.closed)
        self.clear_button.setEnabled(bool(self.draft))
        self.save_button.setEnabled(self.calibrated and self.room_file is not None)
        for widget in (self.name_edit, self.kind_box, self.height_box):
            widget.setEnabled(self.calibrated)

    def save(self) -> bool:
        """Write the zones into the room file and hand them to ``on_saved``; a failure is said in the dialog."""
        if self.room_file is None or not self.calibrated:
            return False
        try:
            save_zones(self.room_file, self.zones)
        except AppError as exc:
            self.message.setText(f"not saved: {exc}")
            return False
        if self.on_saved is not None:
            self.on_saved(list(self.zones))
        self.message.setText(f"saved {len(self.zones)} zone(s) into {self.room_file}")
        return True
