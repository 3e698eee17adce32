"""Start the GUI: open the session, start processing, show the window (or take a screenshot)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PyQt6.QtCore import QCoreApplication, Qt, QTimer
from PyQt6.QtWidgets import QApplication

from app.main_window import MainWindow
from app.notices import Notices
from capture.session import open_session
from core.errors import AppError
from core.urls import redact
from engine.pipeline import build_pipeline
from engine.runner import PipelineRunner, RunnerState


def build_window(
    source: Path | None = None,
    calibration: Path | None = None,
    uncalibrated: bool = False,
    detector: str = "blazepose",
    body_model: Path | None = None,
    frames: int | None = None,
    realtime: bool = True,
    loop: bool = True,
    weights: Path | None = None,
    with_body: bool = True,
    overlay: str = "both",
    room: Path | None = None,
    backend: str = "torch",
) -> MainWindow:
    """Open the session, start the runner and return the (not yet shown) window. Warnings logged
    from here on (opening included) are shown in the window's status area."""
    notices = Notices().attach()
    try:
        session = open_session(source, calibration, uncalibrated, realtime=realtime, loop=loop, room=room)
    except BaseException:
        notices.detach()
        raise
    try:
        pipeline = build_pipeline(session.cameras, detector, body_model, weights, with_body, backend=backend)
    except BaseException:
        session.replay.close()
        notices.detach()
        raise
    runner = PipelineRunner(session.replay, pipeline, max_sets=frames)
    what = redact(str(room or source or "bundled demo"))  # a camera URL's password never reaches the title bar
    title = f"Room capture - {what} ({'calibrated' if session.calibrated else 'uncalibrated'})"
    try:
        window = MainWindow(runner, session.cameras, title, overlay=overlay, notices=notices)
    except BaseException:
        session.replay.close()
        pipeline.close()
        notices.detach()
        raise
    runner.start()
    return window


def new_application() -> QApplication:
    """The QApplication, with OpenGL contexts that share resources: pyqtgraph compiles its
    shaders once, and every 3D view (main window, later windows) must be able to use them."""
    existing = QApplication.instance()
    if existing is not None:
        return existing  # type: ignore[return-value]
    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    return QApplication(sys.argv[:1])


def run_gui(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise AppError("no display to open a window on: run on a desktop, under xvfb-run, or with --headless --out FILE.npz")
    app = new_application()
    screenshot = args.screenshot is not None
    window = build_window(
        args.source,
        args.calibration,
        args.uncalibrated,
        args.detector,
        args.body_model,
        args.frames,
        realtime=not screenshot,
        loop=not (args.no_loop or screenshot),
        weights=args.model,
        with_body=not args.no_body,
        overlay=args.overlay,
        room=args.room,
        backend=args.backend,
    )
    window.resize(1600, 900)
    window.show()
    if getattr(args, "record", None) is not None and not window.start_recording(args.record, store_video=not args.no_video):
        raise AppError(window.message)
    if screenshot:
        _schedule_screenshot(window, args.screenshot, args.frames)
    code = app.exec()
    window.shutdown()
    if screenshot and window.runner.state == RunnerState.FAILED:  # e.g. a room whose cameras never delivered
        raise AppError(window.runner.error or "processing failed")
    return code


def run_wizard(args: argparse.Namespace) -> int:
    """``--calibrate FOLDER``: the calibration wizard on a folder of per-camera calibration videos,
    or ``--calibrate room.toml`` on the room's live cameras (``--calibration`` may give the cameras'
    intrinsics, ``--board`` the board)."""
    from app.calibration_wizard import CalibrationWizard
    from calibration.board import load_board
    from capture.replay import SessionReplay
    from capture.sources import sources_from_path
    from core.camera import uncalibrated

    if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise AppError("no display to open the calibration wizard on: run on a desktop or under xvfb-run")
    board = load_board(args.board) if args.board is not None else None
    live = str(args.calibrate).endswith(".toml")  # a room file: calibrate its live cameras
    if live:
        from capture.room import load_room, open_room

        room = load_room(args.calibrate)
        room.calibration = None
        replay, cameras = open_room(room)
    else:
        sources = sources_from_path(args.calibrate)
        replay = SessionReplay(sources)
        cameras = [uncalibrated(s.name, tuple(s.image_size)) for s in sources]  # type: ignore[arg-type]
    if args.calibration is not None:
        from calibration.formats import read_cameras

        given = {c.name: c for c in read_cameras(args.calibration)}
        cameras = [given.get(c.name, c) for c in cameras]
    app = new_application()
    wizard = CalibrationWizard(replay, cameras, board=board, recorded=not live)  # type: ignore[arg-type]
    wizard.saved.connect(lambda path: print(f"saved calibration {path}"))
    wizard.show()
    code = app.exec()
    replay.close()
    return code


def _schedule_screenshot(window: MainWindow, path: Path, frames: int) -> None:
    """Poll until ``frames`` sets were processed and the newest is shown, then save and quit."""

    def check() -> None:
        runner = window.runner
        done = runner.processed >= frames or runner.state in (RunnerState.FINISHED, RunnerState.FAILED)
        if done and runner.latest() is window.shown:
            window.refresh()
            window.grab().save(str(path))
            print(f"saved screenshot {path} after {runner.processed} frame-sets")
            QApplication.quit()

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(100)
