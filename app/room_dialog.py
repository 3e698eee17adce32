"""Edit a room: add, edit, remove and test cameras, then save the room file.

A camera URL's password and tokens are never shown: the source cell shows the URL redacted and
keeps the real one behind it; typing a new URL replaces it (and it is shown redacted in turn)."""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from capture.live import open_stream, redact, source_problem
from capture.room import CameraEntry, Room, RoomError, is_device_or_url, save_room
from core.errors import AppError
from core.urls import scrub

COLUMNS = ("name", "source", "width", "height", "fps")
SOURCE = COLUMNS.index("source")
REAL_SOURCE = Qt.ItemDataRole.UserRole


def test_camera(source: str, timeout: float = 3.0) -> str:
    """Open ``source``, grab one frame; a one-line result (never shows a password)."""
    start = time.monotonic()
    try:
        stream = open_stream(source, timeout=timeout)
    except (OSError, AppError) as exc:
        return f"cannot open {redact(source)}: {scrub(str(exc), source)}"
    try:
        image = stream.read()
    except OSError as exc:
        return f"{redact(source)}: opened but no frame ({scrub(str(exc), source)})"
    finally:
        stream.release()
    if image is None:
        return f"{redact(source)}: opened but no frame"
    return f"ok: {image.shape[1]}x{image.shape[0]}, first frame after {1000 * (time.monotonic() - start):.0f} ms"


class RoomDialog(QDialog):
    def __init__(self, room: Room | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Room cameras")
        self.resize(820, 420)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Room name:"))
        self.name = QLineEdit(room.name if room else "Room")
        row.addWidget(self.name, 1)
        row.addWidget(QLabel("Calibration file:"))
        self.calibration = QLineEdit(str(room.calibration) if room and room.calibration else "")
        row.addWidget(self.calibration, 1)
        layout.addLayout(row)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        header = self.table.horizontalHeader()
        assert header is not None  # a QTableWidget always has one
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        for text, slot in (("Add camera", self.add_row), ("Remove", self.remove_row), ("Test selected", self.test_selected)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(self._save_as)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
        self.message = QLabel("Sources: usb:N, rtsp://user:password@host/..., http://host/video.mjpg, a video file")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        for cam in room.cameras if room else []:
            self.add_row(cam)
        self.table.itemChanged.connect(self._hide_secret)

    def add_row(self, cam: CameraEntry | None = None) -> None:
        cam = cam if isinstance(cam, CameraEntry) else CameraEntry(f"cam{self.table.rowCount() + 1}", "usb:0", (1280, 720), 30.0)
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, value in enumerate((cam.name, cam.source, cam.resolution[0], cam.resolution[1], cam.fps)):
            self.table.setItem(r, c, QTableWidgetItem(str(value)))
        self._hide_secret(self.table.item(r, SOURCE))

    def source(self, row: int) -> str:
        """The real source of ``row`` (the cell shows it redacted)."""
        item = self.table.item(row, SOURCE)
        if item is None:
            return ""
        real = item.data(REAL_SOURCE)
        text = item.text().strip()
        return real if isinstance(real, str) and text == redact(real) else text

    def _cell(self, row: int, column: int) -> str:
        """The text shown in a cell ("" for a cell never filled)."""
        item = self.table.item(row, column)
        return item.text() if item is not None else ""

    def _hide_secret(self, item: QTableWidgetItem | None) -> None:
        """Keep a typed source behind the cell and show it redacted."""
        if item is None or item.column() != SOURCE:
            return
        real = self.source(item.row())
        blocked = self.table.blockSignals(True)
        item.setData(REAL_SOURCE, real)
        item.setText(redact(real))
        self.table.blockSignals(blocked)

    def remove_row(self) -> None:
        r = self.table.currentRow()
        if r >= 0:
            self.table.removeRow(r)

    def test_selected(self) -> str:
        r = max(self.table.currentRow(), 0)
        if self.table.rowCount() == 0:
            return ""
        text = test_camera(self.source(r))
        self.message.setText(f"{self._cell(r, 0)}: {text}")
        return text

    def room(self) -> Room:
        """The room as edited; RoomError naming the row and field when something is wrong."""
        cameras = []
        for r in range(self.table.rowCount()):
            values = [self._cell(r, c).strip() for c in range(len(COLUMNS))]
            name, source = values[0], self.source(r)
            if not name or not source:
                raise RoomError(f"camera row {r + 1}: name and source are required")
            try:
                size, fps = (int(values[2]), int(values[3])), float(values[4])
            except ValueError:
                raise RoomError(f"camera {name}: width, height and fps must be numbers") from None
            if min(size) <= 0 or not 0 < fps <= 1000:
                raise RoomError(f"camera {name}: width and height must be positive, fps between 0 and 1000")
            problem = source_problem(source) if is_device_or_url(source) else None
            if problem is not None:
                raise RoomError(f"camera {name}: source {redact(source)}: {problem}")
            cameras.append(CameraEntry(name, source, size, fps))
        if not cameras:
            raise RoomError("the room has no cameras")
        calibration = Path(self.calibration.text()) if self.calibration.text().strip() else None
        return Room(self.name.text().strip() or "Room", cameras, calibration)

    def save(self, path: str | Path) -> bool:
        try:
            save_room(path, self.room())
        except (AppError, OSError) as exc:
            self.message.setText(f"<span style='color:#c33'>not saved: {exc}</span>")
            return False
        self.message.setText(f"saved {path} (start with: python main.py --room {path})")
        return True

    def _save_as(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Room file", "room.toml", "Room (*.toml)")
        if name:
            self.save(name)
