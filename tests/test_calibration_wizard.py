"""The calibration wizard under Xvfb on recorded calibration videos (caliscope's real webcams)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.gui

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("GUI tests need a display: run them with `make test` (Xvfb)", allow_module_level=True)

from app.wizard import CalibrationWizard  # noqa: E402
from calibration.board import Board  # noqa: E402
from calibration.collector import BoardCollector  # noqa: E402
from calibration.importers import read_caliscope  # noqa: E402
from calibration.io import load_calibration  # noqa: E402
from capture.replay import SessionReplay  # noqa: E402
from capture.sources import sources_from_path  # noqa: E402
from core.camera import uncalibrated  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CALISCOPE = ROOT / "tests" / "data" / "calibration" / "caliscope"
BOARD = Board("charuco", 4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True)
SCREENSHOT = os.environ.get("WIZARD_SCREENSHOT")  # set to write the README picture


def recorded_videos(folder: Path) -> Path:
    """The 16 synchronized test frames of each camera as a 6 fps video per camera."""
    folder.mkdir()
    for c in range(4):
        writer = cv2.VideoWriter(str(folder / f"cam_{c}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 6, (1280, 720))
        for f in sorted((CALISCOPE / f"cam_{c}").glob("*.jpg")):
            writer.write(cv2.imread(str(f)))
        writer.release()
    return folder


def test_wizard_reaches_the_summary_and_saves_a_file_the_report_reads(qtbot, tmp_path: Path) -> None:
    replay = SessionReplay(sources_from_path(recorded_videos(tmp_path / "videos")))
    cameras = read_caliscope(CALISCOPE / "camera_array.toml")  # intrinsics from caliscope's own file
    wizard = CalibrationWizard(replay, cameras, board=BOARD, recorded=True)
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitExposed(wizard)
    assert wizard.board_page.isComplete()
    wizard.next()  # intrinsics: all given by the file
    assert wizard.currentPage() is wizard.intrinsics_page and wizard.intrinsics_page.isComplete()
    wizard.next()  # all cameras together: the recording plays through
    qtbot.waitUntil(lambda: wizard.ended, timeout=180000)
    page = wizard.together_page
    assert page.isComplete() and wizard.collector is not None and wizard.collector.linked()
    links = wizard.collector.links()
    assert links[("cam_0", "cam_2")] >= 5 and links[("cam_0", "cam_1")] >= 3
    graph = wizard.together_page.graph.grab().toImage()
    assert graph.width() > 100
    wizard.next()  # floor: skipped
    wizard.next()  # summary: the room is solved on the worker thread
    assert wizard.currentPage() is wizard.summary_page
    qtbot.waitUntil(lambda: not wizard.summary_page.solving, timeout=60000)
    table = wizard.summary_page.table
    assert table.rowCount() == 4
    lights = [table.item(r, 1).text() for r in range(4)]
    assert all(light in ("green", "yellow") for light in lights), lights
    out = tmp_path / "room.toml"
    wizard.summary_page.path.setText(str(out))
    with qtbot.waitSignal(wizard.saved, timeout=5000):
        wizard.summary_page.save_button.click()
    if SCREENSHOT:
        wizard.grab().save(SCREENSHOT)
    cams, meta = load_calibration(out)
    assert [c.name for c in cams] == ["cam_0", "cam_1", "cam_2", "cam_3"] and meta["tool"] == "calibration wizard"
    report = subprocess.run([sys.executable, "-m", "calibration", "report", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert set(json.loads(report.stdout)["positions_m"]) == {"cam_0", "cam_1", "cam_2", "cam_3"}
    wizard.done(0)
    replay.close()


def test_intrinsics_step_collects_a_camera_from_its_video(qtbot) -> None:
    """One camera without intrinsics: the wizard captures boards from its ChArUco video until ready."""
    replay = SessionReplay(sources_from_path(CALISCOPE / "intrinsic" / "cam_2.mp4"))
    camera = uncalibrated("cam_2", (1280, 720))
    wizard = CalibrationWizard(replay, [camera], board=BOARD, recorded=True)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    page = wizard.intrinsics_page
    qtbot.waitUntil(lambda: wizard.ended, timeout=180000)  # keep collecting to the end of the video
    assert page.isComplete()
    state = wizard.collector.cameras["cam_2"]
    assert len(state.captures) >= 8 and state.intrinsics is not None
    assert abs(state.intrinsics.K[0, 0] / 650.80 - 1) < 0.03  # caliscope's fx for this webcam
    rows, cols = np.nonzero(state.coverage())  # this video shows the board near the centre only
    assert len(rows) >= 1 and rows.min() >= 2 and rows.max() <= 4 and cols.min() >= 2 and cols.max() <= 5
    view = page.views["cam_2"]
    assert "captured" in view.note
    wizard.done(0)
    replay.close()


def test_collector_keeps_still_boards_in_new_places_only() -> None:
    from calibration.board import Detection

    collector = BoardCollector(BOARD, [uncalibrated("a", (1280, 720))], require_still=True)
    grid = np.stack(np.meshgrid(np.arange(3) * 40.0, np.arange(4) * 40.0), axis=-1).reshape(-1, 2)
    board_at = lambda x, y: Detection(grid + np.array([x, y]), np.arange(12))  # noqa: E731
    assert not collector.offer_intrinsic("a", board_at(100, 100))  # first sighting: not known to be still
    assert collector.offer_intrinsic("a", board_at(100.5, 100))  # still: captured
    assert not collector.offer_intrinsic("a", board_at(100.5, 100))  # same place: not again
    assert not collector.offer_intrinsic("a", board_at(600, 400))  # moved: not still
    assert collector.offer_intrinsic("a", board_at(600, 400.5))  # still in a new place
    assert len(collector.cameras["a"].captures) == 2


def solved_wizard(qtbot, tmp_path: Path):
    """A wizard whose collector holds a solved room (caliscope's cameras), on its summary page's
    file name, without playing the recording."""
    from calibration.extrinsics import ExtrinsicsResult
    from capture.sources import SyntheticSource

    cameras = read_caliscope(CALISCOPE / "camera_array.toml")
    replay = SessionReplay([SyntheticSource(c.name, size=c.image_size, frames=1) for c in cameras])
    wizard = CalibrationWizard(replay, cameras, board=BOARD, recorded=True)
    qtbot.addWidget(wizard)
    wizard.collector = BoardCollector(BOARD, cameras)
    wizard.collector.result = ExtrinsicsResult(cameras, {c.name: 0.5 for c in cameras}, 0.5, 0.054, 0.054, {})
    wizard.collector.room = cameras
    wizard.summary_page.path.setText(str(tmp_path / "room.toml"))
    wizard.show()
    return wizard, replay


def answer(monkeypatch, button):
    """QMessageBox.question answers ``button``; the questions asked are recorded."""
    from PyQt6.QtWidgets import QMessageBox

    asked: list[str] = []

    def question(parent, title, text, *args):
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked


@pytest.mark.parametrize("choice", ["Save", "Discard", "Cancel"])
def test_finish_with_an_unsaved_calibration_asks_to_save(qtbot, tmp_path: Path, monkeypatch, choice: str) -> None:
    from PyQt6.QtWidgets import QMessageBox, QWizard

    wizard, replay = solved_wizard(qtbot, tmp_path)
    asked = answer(monkeypatch, getattr(QMessageBox.StandardButton, choice))
    assert wizard.unsaved()
    wizard.accept()  # what the Finish button does (QWizard connects it to accept)
    assert len(asked) == 1 and "not saved" in asked[0] and str(tmp_path / "room.toml") in asked[0]
    written = tmp_path / "room.toml"
    if choice == "Save":
        assert written.is_file() and not wizard.isVisible() and wizard.result() == QWizard.DialogCode.Accepted
        cams, meta = load_calibration(written)
        assert len(cams) == 4 and meta["tool"] == "calibration wizard"
    elif choice == "Discard":
        assert not written.exists() and not wizard.isVisible()
    else:
        assert not written.exists() and wizard.isVisible()
        wizard.done(0)
    replay.close()


def test_finish_after_saving_asks_nothing_and_a_failed_save_keeps_the_wizard_open(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PyQt6.QtWidgets import QMessageBox

    wizard, replay = solved_wizard(qtbot, tmp_path)
    wizard.summary_page.path.setText(str(tmp_path / "no_folder" / "room.toml"))
    asked = answer(monkeypatch, QMessageBox.StandardButton.Save)
    wizard.accept()  # saving fails: the wizard stays, and says why
    assert len(asked) == 1 and wizard.isVisible() and "cannot save" in wizard.summary_page.status.text()
    wizard.summary_page.path.setText(str(tmp_path / "room.toml"))
    wizard.summary_page.save_button.click()
    assert (tmp_path / "room.toml").is_file() and not wizard.unsaved()
    wizard.accept()
    assert len(asked) == 1 and not wizard.isVisible()
    replay.close()


def test_finish_without_a_solved_calibration_just_closes(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PyQt6.QtWidgets import QMessageBox

    replay = SessionReplay(sources_from_path(recorded_videos(tmp_path / "videos")))
    wizard = CalibrationWizard(replay, read_caliscope(CALISCOPE / "camera_array.toml"), board=BOARD)
    qtbot.addWidget(wizard)
    wizard.show()
    asked = answer(monkeypatch, QMessageBox.StandardButton.Cancel)
    wizard.accept()
    assert asked == [] and not wizard.isVisible()
    replay.close()


def slow_solves(monkeypatch, seconds: float) -> list[tuple[int, float, float]]:
    """BoardCollector.solve takes ``seconds`` longer; each call's (thread, start, end) is recorded."""
    original = BoardCollector.solve
    solves: list[tuple[int, float, float]] = []

    def solve(self, skip_unlinked: bool = True):
        start = time.perf_counter()
        time.sleep(seconds)
        try:
            return original(self, skip_unlinked)
        finally:
            solves.append((threading.get_ident(), start, time.perf_counter()))

    monkeypatch.setattr(BoardCollector, "solve", solve)
    return solves


def test_the_worker_detects_and_solves_while_the_ui_thread_keeps_ticking(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PyQt6.QtCore import QTimer

    ui = threading.get_ident()
    detecting: set[int] = set()
    detect = Board.detect
    monkeypatch.setattr(Board, "detect", lambda self, image: detecting.add(threading.get_ident()) or detect(self, image))
    solves = slow_solves(monkeypatch, 1.0)
    ticks: list[tuple[int, float]] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append((threading.get_ident(), time.perf_counter())))
    timer.start(20)
    replay = SessionReplay(sources_from_path(recorded_videos(tmp_path / "videos")))
    wizard = CalibrationWizard(replay, read_caliscope(CALISCOPE / "camera_array.toml"), board=BOARD, recorded=True)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    wizard.next()  # all cameras together
    qtbot.waitUntil(lambda: wizard.ended, timeout=180000)
    wizard.next()
    wizard.next()  # summary: solving
    assert wizard.summary_page.solving and not wizard.summary_page.isComplete()  # Finish waits for the solve
    qtbot.waitUntil(lambda: not wizard.summary_page.solving, timeout=60000)
    timer.stop()
    assert detecting and ui not in detecting  # every board detection ran off the UI thread
    [(solver, start, end)] = solves
    assert solver != ui
    during = [ident for ident, t in ticks if start <= t <= end]
    assert len(during) >= 10 and set(during) == {ui}  # 1 s of solving: the UI thread's timer went on (~50 ticks)
    assert wizard.summary_page.table.rowCount() == 4 and wizard.summary_page.save_button.isEnabled()
    wizard.done(0)
    replay.close()


def test_closing_mid_solve_returns_at_once_and_the_worker_ends(qtbot, tmp_path: Path, monkeypatch) -> None:
    from app.wizard.worker import WorkerState

    solves = slow_solves(monkeypatch, 1.5)
    cameras = read_caliscope(CALISCOPE / "camera_array.toml")
    replay = SessionReplay(sources_from_path(recorded_videos(tmp_path / "videos")))
    wizard = CalibrationWizard(replay, cameras, board=BOARD, recorded=True)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.summary_page.initializePage()  # what Next does: the solve starts on the worker
    qtbot.waitUntil(lambda: wizard.worker is not None and wizard.worker.state is WorkerState.SOLVING, timeout=10000)
    start = time.perf_counter()
    wizard.reject()  # Cancel
    assert time.perf_counter() - start < 0.5 and not wizard.isVisible()
    replay.close()  # safe: the worker reads no frame after the wizard closed
    assert wizard.worker is not None and wizard.worker.join(timeout=30)  # the solve finished, then the thread ended
    assert len(solves) == 1 and wizard.worker.outcomes() == []  # its outcome was dropped


def test_closing_while_collecting_stops_reading_frames(qtbot, tmp_path: Path) -> None:
    replay = SessionReplay(sources_from_path(CALISCOPE / "intrinsic" / "cam_2.mp4"))
    reads: list[float] = []
    read = replay.next
    replay.next = lambda: reads.append(time.perf_counter()) or read()
    wizard = CalibrationWizard(replay, [uncalibrated("cam_2", (1280, 720))], board=BOARD, recorded=True)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    qtbot.waitUntil(lambda: len(reads) >= 3, timeout=30000)
    wizard.reject()
    closed = time.perf_counter()
    replay.close()
    assert wizard.worker is not None and wizard.worker.join(timeout=10)
    assert not wizard.ended and all(t < closed for t in reads)  # no frame-set read after the wizard closed


def test_an_impossible_solve_says_why_on_the_summary_page(qtbot, tmp_path: Path) -> None:
    """No instant seen by two cameras: the worker's error reaches the page as it always read."""
    from capture.sources import SyntheticSource

    cameras = read_caliscope(CALISCOPE / "camera_array.toml")
    replay = SessionReplay([SyntheticSource(c.name, size=c.image_size, frames=1) for c in cameras])
    wizard = CalibrationWizard(replay, cameras, board=BOARD, recorded=True)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.summary_page.initializePage()
    qtbot.waitUntil(lambda: not wizard.summary_page.solving, timeout=30000)
    status = wizard.summary_page.status.text()
    assert "cannot calibrate: fewer than two cameras saw the board together" in status, status
    assert not wizard.summary_page.save_button.isEnabled() and not wizard.unsaved()
    wizard.done(0)
    replay.close()


class FailingSource:
    """A frame-set source whose cameras never deliver (as a room with unplugged cameras)."""

    def __init__(self) -> None:
        self.camera_names, self.fps, self.skipped_sets = ["cam_0"], 30.0, 0

    def open(self) -> None: ...
    def close(self) -> None: ...
    def rewind(self) -> None: ...

    def next(self):
        from core.errors import SourceError

        raise SourceError("camera cam_0: no frame within 5 s (is it plugged in?)")

    def __iter__(self):
        return iter(())


def test_a_source_that_fails_is_named_on_the_page(qtbot) -> None:
    wizard = CalibrationWizard(FailingSource(), [uncalibrated("cam_0", (640, 480))], board=BOARD, recorded=False)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.ended, timeout=10000)
    assert "camera cam_0: no frame within 5 s" in wizard.intrinsics_page.status.text()
    assert not wizard.intrinsics_page.isComplete()
    wizard.done(0)


def test_wizard_on_a_folder_knows_each_video_s_size() -> None:
    """--calibrate FOLDER without --intrinsics: the cameras carry the videos' real sizes (they
    were (0, 0), read before the videos were open, and the intrinsics step failed)."""
    from app.launch import _wizard_source

    replay, cameras = _wizard_source(CALISCOPE / "intrinsic", live=False)
    try:
        expected = {}
        for video in sorted((CALISCOPE / "intrinsic").glob("*.mp4")):
            cap = cv2.VideoCapture(str(video))
            expected[video.stem] = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            cap.release()
        assert {c.name: c.image_size for c in cameras} == expected
        assert all(w > 0 and h > 0 for w, h in expected.values()) and len(expected) == 3
        frameset = replay.next()
        assert frameset is not None and frameset.frames["cam_0"].image.shape[1::-1] == expected["cam_0"]
    finally:
        replay.close()
