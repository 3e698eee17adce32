"""The wizard's last step: the room solved on the worker thread, a traffic light per camera,
and Save."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout

from app.wizard.pages import StepPage
from app.wizard.views import LIGHTS
from calibration.io import save_calibration
from core.errors import AppError

if TYPE_CHECKING:
    from app.wizard.wizard import CalibrationWizard


class SummaryPage(StepPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__(wizard)
        self.setTitle("5. Summary")
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["camera", "status", "error (px)", "position (m) / reason"])
        header = self.table.horizontalHeader()
        assert header is not None  # a table always has one
        header.setStretchLastSection(True)
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
        self.solving = False

    def initializePage(self) -> None:
        self.w.is_saved = False  # solved again: not saved yet
        self.solving = True
        self.save_button.setEnabled(False)
        self.status.setText("solving the room…")
        self.completeChanged.emit()
        self.w.solve()

    def solved(self, error: str | None) -> None:
        """The worker's solve finished: show the result per camera, or why it failed."""
        self.solving = False
        self.completeChanged.emit()
        if error is not None:
            self.status.setText(f"<span style='color:#c33'>cannot calibrate: {error}</span>")
            return
        self._fill_table()
        collector = self.w.collector
        assert collector is not None and collector.result is not None
        result = collector.result
        self.status.setText(f"RMS {result.rms_px:.2f} px; board square measured {1000 * result.square_m:.1f} mm "
                            f"(true {1000 * result.square_true_m:.1f} mm); world: "
                            f"{'the floor board' if collector.floor is not None else 'the first camera'}")  # fmt: skip
        self.save_button.setEnabled(True)

    def _fill_table(self) -> None:
        assert self.w.collector is not None
        summary = self.w.collector.summary()
        self.table.setRowCount(len(summary))
        for r, (name, info) in enumerate(summary.items()):
            light = QTableWidgetItem(str(info["light"]))
            light.setBackground(LIGHTS[str(info["light"])])
            error = info["error_px"]
            where = info.get("position_m") or info.get("reason")
            position = ", ".join(f"{v:.2f}" for v in where) if isinstance(where, list) else str(where)
            for c, item in enumerate([QTableWidgetItem(name), light, QTableWidgetItem("-" if error is None else f"{error:.2f}"),
                                      QTableWidgetItem(position)]):  # fmt: skip
                self.table.setItem(r, c, item)

    def isComplete(self) -> bool:
        return not self.solving  # Finish waits for the solve

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
