"""The wizard's steps: the board, each camera, all cameras together, the floor. Each page draws
the worker's progress (:meth:`StepPage.on_progress`) and reacts to the end of the source; the
work itself runs on the worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QImage, QPixmap
from PyQt6.QtWidgets import QFileDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWizardPage

from app.wizard.progress import Progress
from app.wizard.views import BoardView, LinkGraph
from app.wizard.worker import Step
from calibration.board import Board, load_board, write_board
from calibration.collector import MIN_INTRINSIC_CAPTURES, MIN_SHARED
from core.errors import AppError

if TYPE_CHECKING:
    from app.wizard.wizard import CalibrationWizard


class StepPage(QWizardPage):
    """A wizard page: ``step`` is what the worker does with frame-sets while the page is shown;
    ``status`` the line where the page (and the wizard, for errors) says how it stands."""

    step = Step.WATCH

    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__()
        self.w = wizard
        self.status = QLabel()

    def on_progress(self, progress: Progress) -> None:
        """The worker's newest frame-set and what the collector holds now."""

    def source_ended(self) -> None:
        """The source has no more frame-sets."""


class BoardPage(StepPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__(wizard)
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
            try:
                write_board(self.w.board, Path(name))
            except (AppError, OSError) as exc:
                self.status.setText(f"<span style='color:#c33'>cannot save the board: {exc}</span>")

    def isComplete(self) -> bool:
        return self.w.board is not None


class IntrinsicsPage(StepPage):
    step = Step.INTRINSICS

    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__(wizard)
        self.setTitle("2. Each camera")
        self.setSubTitle(f"Show the board to each camera in many places (edges and corners too). Still boards in new "
                         f"places are captured automatically; {MIN_INTRINSIC_CAPTURES} per camera are needed.")  # fmt: skip
        self.grid = QGridLayout(self)
        self.views: dict[str, BoardView] = {}
        self.grid.addWidget(self.status, 99, 0, 1, 2)

    def initializePage(self) -> None:
        self.w.start_collecting(self.step)
        progress = self.w.progress
        assert progress is not None
        needed = [name for name, camera in progress.cameras.items() if not camera.from_file]
        for i, name in enumerate(needed):
            if name not in self.views:
                self.views[name] = BoardView(name)
                self.grid.addWidget(self.views[name], i // 2, i % 2)
        self._update_status(progress)

    def on_progress(self, progress: Progress) -> None:
        for name, view in self.views.items():
            if name not in progress.frames:
                continue
            camera = progress.cameras[name]
            error = f"{camera.error_px:.2f} px" if camera.error_px is not None else "-"
            view.show_frame(progress.frames[name].image, progress.detections.get(name), camera.coverage,
                            f"{camera.captures} captured, error {error}")  # fmt: skip
        self._update_status(progress)
        self.completeChanged.emit()

    def source_ended(self) -> None:
        if self.w.progress is not None:
            self._update_status(self.w.progress, ended=True)

    def _update_status(self, progress: Progress, ended: bool = False) -> None:
        waiting = [n for n, c in progress.cameras.items() if not c.from_file and not c.ready]
        given = [n for n, c in progress.cameras.items() if c.from_file]
        text = "all cameras ready" if not waiting else f"waiting for: {', '.join(waiting)}"
        if given:
            text += f"  |  intrinsics given for {', '.join(given)}"
        if ended and waiting:
            text += "  |  the recording ended before enough captures"
        self.status.setText(text)

    def isComplete(self) -> bool:
        progress = self.w.progress
        return progress is not None and all(c.ready for c in progress.cameras.values())


class TogetherPage(StepPage):
    step = Step.TOGETHER

    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__(wizard)
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
        self.status.setWordWrap(True)
        side.addWidget(self.graph, 1)
        side.addWidget(self.status)
        layout.addLayout(side, 2)

    def initializePage(self) -> None:
        self.w.rewind()
        self.w.start_collecting(self.step)

    def on_progress(self, progress: Progress) -> None:
        for name, view in self.views.items():
            detection = progress.detections.get(name)
            if name in progress.frames:
                view.show_frame(progress.frames[name].image, detection, None, "board" if detection else "")
        self.graph.set_links(progress.links)
        self.status.setText(f"{progress.instants} instants captured; "
                            f"{'all cameras linked' if progress.linked else 'not all cameras linked yet'}")  # fmt: skip
        self.completeChanged.emit()

    def source_ended(self) -> None:
        progress = self.w.progress
        if progress is not None and not progress.linked:
            self.status.setText(self.status.text() + " — the recording ended; unlinked cameras will be left out")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        progress = self.w.progress
        if progress is None:
            return False
        strong = sum(1 for c in progress.links.values() if c >= MIN_SHARED)
        return progress.linked or (self.w.ended and strong > 0)


class FloorPage(StepPage):
    def __init__(self, wizard: CalibrationWizard) -> None:
        super().__init__(wizard)
        self.setTitle("4. The floor")
        self.setSubTitle("Lay the board flat on the floor where two or more cameras see it, then press the button. "
                         "Skip to keep the first camera's frame as the world.")  # fmt: skip
        layout = QVBoxLayout(self)
        self.button = QPushButton("The board is on the floor now")
        self.button.clicked.connect(self.capture)
        self.status.setText("no floor set (the world will be the first camera's frame)")
        layout.addWidget(self.button)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def capture(self) -> None:
        """The newest sightings become the floor board (the worker only watches on this step, so
        the collector is the UI's to change)."""
        collector = self.w.collector
        assert collector is not None
        try:
            collector.set_floor(self.w.current_detections)
        except AppError as exc:
            self.status.setText(f"<span style='color:#c33'>{exc}</span>")
            return
        seen = [n for n, d in self.w.current_detections.items() if d is not None]
        self.status.setText(f"floor set from {', '.join(seen)}")
