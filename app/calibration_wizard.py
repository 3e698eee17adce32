"""The room calibration wizard: board -> each camera's intrinsics -> all cameras together (with a
live link graph) -> the floor -> summary with a traffic light per camera, and Save.

It runs on any synchronized frame source (live cameras or recorded videos): a timer pulls one
frame-set at a time, detects the board in every view and lets :class:`BoardCollector` decide
what to keep.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from calibration.board import Board, Detection, load_board
from calibration.collector import MIN_INTRINSIC_CAPTURES, MIN_SHARED, BoardCollector
from calibration.io import save_calibration
from capture.replay import SessionReplay
from core.camera import Camera
from core.errors import AppError

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


class CalibrationWizard(QWizard):
    """``replay``: the synchronized source; ``cameras``: the room's cameras (those with K use it
    as intrinsics unless ``intrinsics_from_cameras`` is False); ``board``: preselected board."""

    saved = pyqtSignal(str)

    def __init__(self, replay: SessionReplay, cameras: list[Camera], board: Board | None = None,
                 recorded: bool = True, intrinsics_from_cameras: bool = True, parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Calibrate the room")
        self.replay, self.cameras, self.recorded = replay, cameras, recorded
        self.intrinsics_from_cameras = intrinsics_from_cameras
        self.board = board
        self.collector: BoardCollector | None = None
        self.frames_seen = 0
        self.board_page = BoardPage(self)
        self.intrinsics_page = IntrinsicsPage(self)
        self.together_page = TogetherPage(self)
        self.floor_page = FloorPage(self)
        self.summary_page = SummaryPage(self)
        for page in (self.board_page, self.intrinsics_page, self.together_page, self.floor_page, self.summary_page):
            self.addPage(page)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.current_detections: dict[str, Detection | None] = {}
        self.ended = False
        self.is_saved = False  # the solved calibration is on disk
        self.resize(1200, 760)

    def rewind(self) -> None:
        """A recording starts again for the next step (every step sees every frame)."""
        if self.recorded:
            self.replay.rewind()
            self.ended = False

    def start_collecting(self) -> None:
        if self.collector is None:
            assert self.board is not None
            self.collector = BoardCollector(
                self.board, self.cameras, self.intrinsics_from_cameras, require_still=not self.recorded
            )
        self.timer.start(0)

    def tick(self) -> None:
        """One frame-set: detect the board in every view and hand it to the current page."""
        if self.ended:
            return
        error = None
        try:
            frameset = self.replay.next()
        except AppError as exc:  # e.g. a room whose cameras never delivered: say so instead of crashing the slot
            frameset, error = None, str(exc)
        if frameset is None:
            self.ended = True
            self.timer.stop()
            page = self.currentPage()
            if hasattr(page, "source_ended"):
                page.source_ended()
            if error is not None and hasattr(page, "status"):
                page.status.setText(f"<span style='color:#c33'>{error}</span>")
            return
        assert self.board is not None
        self.frames_seen += 1
        self.current_detections = {n: self.board.detect(f.image) for n, f in frameset.frames.items()}
        page = self.currentPage()
        if hasattr(page, "on_frames"):
            page.on_frames(frameset.frames, self.current_detections)

    def unsaved(self) -> bool:
        """A solved calibration that has not been saved since it was solved."""
        collector = self.collector
        return collector is not None and collector.result is not None and collector.room is not None and not self.is_saved

    def accept(self) -> None:
        """Finish: a solved calibration that is not saved yet is saved on request (Save), left
        (Discard) or the wizard stays open (Cancel, or Save that failed)."""
        if self.unsaved():
            path = self.summary_page.path.text()
            answer = QMessageBox.question(
                self, "Calibration not saved", f"The room calibration is not saved. Save it to {path}?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Save,
            )  # fmt: skip
            if answer == QMessageBox.StandardButton.Cancel:
                return
            if answer == QMessageBox.StandardButton.Save and not self.summary_page.save():
                return  # the summary page shows why
        super().accept()

    def done(self, result: int) -> None:
        self.timer.stop()
        super().done(result)


class BoardPage(QWizardPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("1. The board")
        self.setSubTitle("Choose the board definition (TOML). Print it at 100% and check one square with a ruler.")
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("board.toml")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        layout.addLayout(row)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status = QLabel()
        self.pdf = QPushButton("Save printable PDF…")
        self.pdf.clicked.connect(self._save_pdf)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.pdf)
        self.path.textChanged.connect(self._load)
        if wizard.board is not None:
            self._show(wizard.board)

    def _browse(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Board definition", "", "Board TOML (*.toml)")
        if name:
            self.path.setText(name)

    def _load(self) -> None:
        try:
            self.w.board = load_board(self.path.text())
        except AppError as exc:
            self.status.setText(f"<span style='color:#c33'>{exc}</span>")
            self.w.board = None
            self.preview.clear()
        else:
            self._show(self.w.board)
        self.completeChanged.emit()

    def _show(self, board: Board) -> None:
        picture = board.image(40)
        image = QImage(
            picture.data, picture.shape[1], picture.shape[0], picture.strides[0], QImage.Format.Format_Grayscale8
        ).copy()
        self.preview.setPixmap(QPixmap.fromImage(image).scaled(360, 360, Qt.AspectRatioMode.KeepAspectRatio))
        self.status.setText(f"{board.kind}, {board.columns} x {board.rows}, square {1000 * board.square:.1f} mm")

    def _save_pdf(self) -> None:
        if self.w.board is None:
            return
        name, _ = QFileDialog.getSaveFileName(self, "Printable board", "board.pdf", "PDF (*.pdf)")
        if name:
            from calibration.__main__ import write_board

            try:
                write_board(self.w.board, Path(name))
            except (AppError, OSError) as exc:
                self.status.setText(f"<span style='color:#c33'>cannot save the board: {exc}</span>")

    def isComplete(self) -> bool:
        return self.w.board is not None


class IntrinsicsPage(QWizardPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("2. Each camera")
        self.setSubTitle(f"Show the board to each camera in many places (edges and corners too). Still boards in new "
                         f"places are captured automatically; {MIN_INTRINSIC_CAPTURES} per camera are needed.")  # fmt: skip
        self.grid = QGridLayout(self)
        self.views: dict[str, BoardView] = {}
        self.status = QLabel()
        self.grid.addWidget(self.status, 99, 0, 1, 2)

    def initializePage(self) -> None:
        self.w.start_collecting()
        assert self.w.collector is not None
        for i, name in enumerate(self.w.collector.needs_intrinsics()):
            if name not in self.views:
                self.views[name] = BoardView(name)
                self.grid.addWidget(self.views[name], i // 2, i % 2)
        self._update_status()

    def on_frames(self, frames, detections) -> None:  # type: ignore[no-untyped-def]
        collector = self.w.collector
        assert collector is not None
        for name, view in self.views.items():
            if name not in frames:
                continue
            collector.offer_intrinsic(name, detections.get(name))
            state = collector.cameras[name]
            error = f"{state.error_px:.2f} px" if state.error_px is not None else "-"
            view.show_frame(
                frames[name].image, detections.get(name), state.coverage(), f"{len(state.captures)} captured, error {error}"
            )
        self._update_status()
        self.completeChanged.emit()

    def source_ended(self) -> None:
        self._update_status(ended=True)

    def _update_status(self, ended: bool = False) -> None:
        collector = self.w.collector
        if collector is None:
            return
        waiting = [n for n in collector.needs_intrinsics() if not collector.intrinsics_ready(n)]
        given = [n for n in collector.cameras if collector.cameras[n].from_file]
        text = "all cameras ready" if not waiting else f"waiting for: {', '.join(waiting)}"
        if given:
            text += f"  |  intrinsics given for {', '.join(given)}"
        if ended and waiting:
            text += "  |  the recording ended before enough captures"
        self.status.setText(text)

    def isComplete(self) -> bool:
        collector = self.w.collector
        return collector is not None and all(collector.intrinsics_ready(n) for n in collector.cameras)


class TogetherPage(QWizardPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("3. All cameras together")
        self.setSubTitle(f"Move the board through the room so that cameras see it together. A link turns green after "
                         f"{MIN_SHARED} shared sightings; every camera must be linked to the others.")  # fmt: skip
        layout = QHBoxLayout(self)
        self.grid = QGridLayout()
        self.views = {c.name: BoardView(c.name) for c in wizard.cameras}
        for i, view in enumerate(self.views.values()):
            self.grid.addWidget(view, i // 2, i % 2)
        layout.addLayout(self.grid, 3)
        side = QVBoxLayout()
        self.graph = LinkGraph([c.name for c in wizard.cameras])
        self.status = QLabel()
        self.status.setWordWrap(True)
        side.addWidget(self.graph, 1)
        side.addWidget(self.status)
        layout.addLayout(side, 2)

    def initializePage(self) -> None:
        self.w.rewind()
        self.w.start_collecting()

    def on_frames(self, frames, detections) -> None:  # type: ignore[no-untyped-def]
        collector = self.w.collector
        assert collector is not None
        collector.offer_sync({n: detections.get(n) for n in collector.cameras})
        for name, view in self.views.items():
            if name in frames:
                view.show_frame(frames[name].image, detections.get(name), None, "board" if detections.get(name) else "")
        self.graph.set_links(collector.links())
        self.status.setText(f"{len(collector.sync_captures)} instants captured; "
                            f"{'all cameras linked' if collector.linked() else 'not all cameras linked yet'}")  # fmt: skip
        self.completeChanged.emit()

    def source_ended(self) -> None:
        collector = self.w.collector
        if collector is not None and not collector.linked():
            self.status.setText(self.status.text() + " — the recording ended; unlinked cameras will be left out")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        collector = self.w.collector
        if collector is None:
            return False
        strong = sum(1 for c in collector.links().values() if c >= MIN_SHARED)
        return collector.linked() or (self.w.ended and strong > 0)


class FloorPage(QWizardPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("4. The floor")
        self.setSubTitle("Lay the board flat on the floor where two or more cameras see it, then press the button. "
                         "Skip to keep the first camera's frame as the world.")  # fmt: skip
        layout = QVBoxLayout(self)
        self.button = QPushButton("The board is on the floor now")
        self.button.clicked.connect(self.capture)
        self.status = QLabel("no floor set (the world will be the first camera's frame)")
        layout.addWidget(self.button)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def capture(self) -> None:
        collector = self.w.collector
        assert collector is not None
        try:
            collector.set_floor(self.w.current_detections)
        except AppError as exc:
            self.status.setText(f"<span style='color:#c33'>{exc}</span>")
            return
        seen = [n for n, d in self.w.current_detections.items() if d is not None]
        self.status.setText(f"floor set from {', '.join(seen)}")


class SummaryPage(QWizardPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("5. Summary")
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["camera", "status", "error (px)", "position (m) / reason"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.status = QLabel()
        row = QHBoxLayout()
        self.path = QLineEdit("room_calibration.toml")
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(lambda: self.save())
        row.addWidget(QLabel("File:"))
        row.addWidget(self.path, 1)
        row.addWidget(self.save_button)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(row)

    def initializePage(self) -> None:
        self.w.timer.stop()
        self.w.is_saved = False  # solved again: not saved yet
        collector = self.w.collector
        assert collector is not None
        try:
            collector.solve()
        except AppError as exc:
            self.status.setText(f"<span style='color:#c33'>cannot calibrate: {exc}</span>")
            self.save_button.setEnabled(False)
            return
        summary = collector.summary()
        self.table.setRowCount(len(summary))
        for r, (name, info) in enumerate(summary.items()):
            light = QTableWidgetItem(str(info["light"]))
            light.setBackground(LIGHTS[str(info["light"])])
            error = info["error_px"]
            where = info.get("position_m") or info.get("reason")
            position = ", ".join(f"{v:.2f}" for v in where) if isinstance(where, list) else str(where)  # type: ignore[union-attr]
            for c, item in enumerate([QTableWidgetItem(name), light, QTableWidgetItem("-" if error is None else f"{error:.2f}"),
                                      QTableWidgetItem(position)]):  # fmt: skip
                self.table.setItem(r, c, item)
        result = collector.result
        assert result is not None
        self.status.setText(f"RMS {result.rms_px:.2f} px; board square measured {1000 * result.square_m:.1f} mm "
                            f"(true {1000 * result.square_true_m:.1f} mm); world: "
                            f"{'the floor board' if collector.floor is not None else 'the first camera'}")  # fmt: skip
        self.save_button.setEnabled(True)

    def save(self) -> bool:
        """Write the calibration to the file named on the page; True when it was written."""
        collector = self.w.collector
        if collector is None or collector.room is None or collector.result is None:
            return False
        result, board = collector.result, collector.board
        world = "floor board" if collector.floor is not None else "first camera"
        metadata = result.metadata(board, world, tool="calibration wizard")
        try:
            save_calibration(self.path.text(), collector.room, metadata)
        except (AppError, OSError) as exc:
            self.status.setText(f"<span style='color:#c33'>cannot save: {exc}</span>")
            return False
        self.status.setText(f"saved {self.path.text()}")
        self.w.is_saved = True
        self.w.saved.emit(self.path.text())
        return True
