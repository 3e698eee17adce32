"""File -> Export...: everyone's motion (or one person's) from the current recording or a results
file, as one of recording.exports.FORMATS. The export runs on a worker thread; its progress and
its end come back to the dialog as Qt signals (queued to the main thread), so the window keeps
running; an error is shown in the dialog, one line naming the file or the choice."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import AppError
from recording.exports import FORMATS, export

log = logging.getLogger(__name__)

EVERYONE = "everyone"


class _Relay(QObject):
    """The worker's reports, delivered on the dialog's (main) thread."""

    progress = pyqtSignal(float)
    finished = pyqtSignal(list)
    failed = pyqtSignal(str)


class ExportDialog(QDialog):
    """Choose the source (``recording``, the current session folder, or a results file), the
    format, the person and the output file, then Export."""

    def __init__(self, parent: QWidget | None = None, recording: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export motion")
        self.recording = recording
        self.worker: threading.Thread | None = None
        self.written: list[Path] = []
        self.relay = _Relay(self)
        self.relay.progress.connect(self._progress)
        self.relay.finished.connect(self._finished)
        self.relay.failed.connect(self._failed)
        self.from_recording = QRadioButton(f"the recording {recording}" if recording else "the recording (none this run)")
        self.from_recording.setEnabled(recording is not None)
        self.from_file = QRadioButton("a results file:")
        (self.from_recording if recording is not None else self.from_file).setChecked(True)
        self.results_path = QLineEdit()
        self.results_path.textEdited.connect(lambda _: self.from_file.setChecked(True))
        self.format = QComboBox()
        for name, fmt in FORMATS.items():
            self.format.addItem(f"{name}: {fmt.what}", name)
        self.person = QSpinBox()
        self.person.setRange(0, 10**6)
        self.person.setSpecialValueText(EVERYONE)  # 0: everyone; else one track id
        self.out_path = QLineEdit()
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = QPushButton("Export")
        self.buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        self._layout()

    def _layout(self) -> None:
        form = QFormLayout()
        source = QVBoxLayout()
        source.addWidget(self.from_recording)
        source.addLayout(_with_browse(self.from_file, self.results_path, self._browse_results))
        form.addRow("Source", source)
        form.addRow("Format", self.format)
        form.addRow("Person", self.person)
        form.addRow("Save as", _with_browse(None, self.out_path, self._browse_out))
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addWidget(self.bar)
        column.addWidget(self.message)
        column.addWidget(self.buttons)

    def _browse_results(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Results file", "", "Results (*.npz)")
        if name:
            self.results_path.setText(name)
            self.from_file.setChecked(True)

    def _browse_out(self) -> None:
        fmt = FORMATS[self.format_name()]
        patterns = " ".join(f"*{s}" for s in fmt.suffixes)
        name, _ = QFileDialog.getSaveFileName(self, "Export to", "", f"{self.format_name()} ({patterns})")
        if name:
            self.out_path.setText(name)

    def format_name(self) -> str:
        return str(self.format.currentData())

    def source(self) -> Path | None:
        if self.from_recording.isChecked():
            return self.recording
        text = self.results_path.text().strip()
        return Path(text) if text else None

    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_alive()

    def start(self) -> None:
        """Export with the chosen settings on a worker thread (one at a time)."""
        if self.busy():
            return
        source, out = self.source(), self.out_path.text().strip()
        if source is None or not out:
            self.message.setText("choose a " + ("results file" if source is None else "file to save as"))
            return
        person = self.person.value() or None
        self.message.setStyleSheet("")
        self.message.setText(f"exporting {source} as {self.format_name()}...")
        self.bar.setValue(0)
        self.export_button.setEnabled(False)
        self.worker = threading.Thread(target=self._run, args=(source, self.format_name(), Path(out), person),
                                       name="export", daemon=True)  # fmt: skip
        self.worker.start()

    def _run(self, source: Path, name: str, out: Path, person: int | None) -> None:
        """On the worker thread: reports only through the relay's signals (never touches widgets)."""
        try:
            paths = export(source, name, out, person=person, progress=self.relay.progress.emit)
        except AppError as exc:
            self.relay.failed.emit(str(exc))
        except Exception as exc:  # a writer's bug: shown, logged with its traceback, the app goes on
            log.exception("export of %s as %s failed", source, name)
            self.relay.failed.emit(f"export failed: {type(exc).__name__}: {exc}")
        else:
            self.relay.finished.emit(paths)

    def _progress(self, fraction: float) -> None:
        self.bar.setValue(round(100 * min(max(fraction, 0.0), 1.0)))

    def _finished(self, paths: list[Path]) -> None:
        self.written = list(paths)
        self.bar.setValue(100)
        self.message.setText("wrote " + ", ".join(str(p) for p in paths))
        self.export_button.setEnabled(True)

    def _failed(self, text: str) -> None:
        self.message.setText(f"error: {text}")
        self.message.setStyleSheet("color: #b00020")
        self.export_button.setEnabled(True)


def _with_browse(label: QWidget | None, line: QLineEdit, browse: Callable[[], None]) -> QHBoxLayout:
    row = QHBoxLayout()
    if label is not None:
        row.addWidget(label)
    row.addWidget(line, 1)
    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    row.addWidget(button)
    return row
