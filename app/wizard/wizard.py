"""The room calibration wizard: board -> each camera's intrinsics -> all cameras together (with a
live link graph) -> the floor -> summary with a traffic light per camera, and Save.

It runs on any synchronized frame source (live cameras or recorded videos). A worker thread
(:class:`CalibrationWorker`) reads the frame-sets, finds the board in every view, lets the
:class:`BoardCollector` decide what to keep and solves the room; a timer on the UI thread takes
its newest progress and its outcomes and hands them to the current page, which only draws.
"""

from __future__ import annotations

from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtWidgets import QMessageBox, QWidget, QWizard

from app.wizard.pages import BoardPage, FloorPage, IntrinsicsPage, StepPage, TogetherPage
from app.wizard.progress import Progress, progress_of
from app.wizard.summary import SummaryPage
from app.wizard.worker import CalibrationWorker, Ended, Solved, Step
from calibration.board import Board, Detection
from calibration.collector import BoardCollector
from core.camera import Camera
from core.types import FrameSetSource

REFRESH_MS = 33  # how often the UI takes the worker's newest progress


class CalibrationWizard(QWizard):
    """``replay``: the synchronized source; ``cameras``: the room's cameras (those with K use it
    as intrinsics unless ``intrinsics_from_cameras`` is False); ``board``: preselected board."""

    saved = pyqtSignal(str)

    def __init__(self, replay: FrameSetSource, cameras: list[Camera], board: Board | None = None,
                 recorded: bool = True, intrinsics_from_cameras: bool = True, parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Calibrate the room")
        self.replay, self.cameras, self.recorded = replay, cameras, recorded
        self.intrinsics_from_cameras = intrinsics_from_cameras
        self.board = board
        self.collector: BoardCollector | None = None
        self.worker: CalibrationWorker | None = None
        self.progress: Progress | None = None  # the newest the pages were shown
        self.collecting = False  # frame-sets go to the current page's step (until the solve)
        self.generation = 0  # rewinds so far: an end reported before the latest rewind is stale
        self.frames_seen = 0
        self.current_detections: dict[str, Detection | None] = {}
        self.ended = False
        self.is_saved = False  # the solved calibration is on disk
        self.board_page = BoardPage(self)
        self.intrinsics_page = IntrinsicsPage(self)
        self.together_page = TogetherPage(self)
        self.floor_page = FloorPage(self)
        self.summary_page = SummaryPage(self)
        for page in (self.board_page, self.intrinsics_page, self.together_page, self.floor_page, self.summary_page):
            self.addPage(page)
        self.currentIdChanged.connect(self._page_changed)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.poll)
        self.resize(1200, 760)

    # --- requests to the worker -----------------------------------------------------------------
    def start_collecting(self, step: Step) -> None:
        """Frame-sets flow (from the worker) and their sightings are used for ``step``."""
        self.collecting = True
        self._worker().collect(step)

    def rewind(self) -> None:
        """A recording starts again for the next step (every step sees every frame)."""
        if self.recorded:
            self.generation += 1
            self.ended = False
            if self.worker is not None:
                self.worker.rewind(self.generation)

    def solve(self) -> None:
        """Stop collecting and solve the room on the worker; the summary page hears the outcome."""
        self.collecting = False
        self._worker().solve()

    def _worker(self) -> CalibrationWorker:
        if self.worker is None:
            if self.collector is None:
                assert self.board is not None
                self.collector = BoardCollector(
                    self.board, self.cameras, self.intrinsics_from_cameras, require_still=not self.recorded
                )
            self.progress = progress_of(self.collector)  # read before the worker owns the collector
            self.worker = CalibrationWorker(self.replay, self.collector)
            self.timer.start(REFRESH_MS)
        return self.worker

    def _page_changed(self, _id: int) -> None:
        page = self.currentPage()
        if self.collecting and self.worker is not None:
            self.worker.collect(page.step if isinstance(page, StepPage) else Step.WATCH)

    # --- results from the worker ----------------------------------------------------------------
    def poll(self) -> None:
        """Show the worker's newest progress on the current page, then react to its outcomes."""
        if self.worker is None:
            return
        outcomes = self.worker.outcomes()  # first: the progress published before them is taken next
        progress = self.worker.latest()
        if progress is not None:
            self._show(progress)
        for outcome in outcomes:
            if isinstance(outcome, Ended):
                self._source_ended(outcome)
            elif isinstance(outcome, Solved):
                self.summary_page.solved(outcome.error)

    def _show(self, progress: Progress) -> None:
        self.progress = progress
        self.frames_seen = progress.frames_seen
        self.current_detections = progress.detections
        page = self.currentPage()
        if isinstance(page, StepPage):
            page.on_progress(progress)

    def _source_ended(self, outcome: Ended) -> None:
        if outcome.generation != self.generation:
            return  # the end of a pass before the latest rewind
        self.ended = True
        page = self.currentPage()
        if isinstance(page, StepPage):
            page.source_ended()
            if outcome.error is not None:
                page.status.setText(f"<span style='color:#c33'>{outcome.error}</span>")

    # --- finishing ------------------------------------------------------------------------------
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
        """Close: the worker reads no more frames (a solve in progress is dropped)."""
        self.timer.stop()
        self.collecting = False
        if self.worker is not None:
            self.worker.stop()
        super().done(result)
