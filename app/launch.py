"""Start the GUI: open the session, start processing, show the window (or take a screenshot)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PyQt6.QtCore import QCoreApplication, Qt, QTimer
from PyQt6.QtWidgets import QApplication

from app.controller import Controller
from app.main_window import MainWindow
from app.notices import Notices
from app.processing import Processing, open_processing, open_scene
from core.camera import Camera
from core.errors import AppError
from core.types import FrameSetSource
from core.urls import redact
from engine.detect.base import DEFAULT_DETECTOR
from engine.runner import RunnerState
from monitoring.live import default_events_path, monitor_config, open_monitor
from monitoring.monitor import Monitor


def build_window(
    source: Path | None = None,
    calibration: Path | None = None,
    uncalibrated: bool = False,
    detector: str = DEFAULT_DETECTOR,
    body_model: Path | None = None,
    frames: int | None = None,
    realtime: bool = True,
    loop: bool = True,
    weights: Path | None = None,
    with_body: bool = True,
    overlay: str = "both",
    room: Path | None = None,
    backend: str = "torch",
    refine: bool = True,
    events: Path | None = None,
    scene: str | None = None,
) -> MainWindow:
    """Open the source, start processing and return the (not yet shown) window. Warnings logged
    from here on (opening included) are shown in the window's status area."""
    notices = Notices().attach()
    try:
        if scene is not None:
            processing = open_scene(scene, realtime=realtime, loop=loop, body_model=body_model, weights=weights,
                                    with_body=with_body, backend=backend, refine=refine)  # fmt: skip
        else:
            processing = open_processing(
                source, calibration, uncalibrated, room, realtime=realtime, loop=loop, detector=detector,
                body_model=body_model, weights=weights, with_body=with_body, backend=backend, refine=refine,
            )  # fmt: skip
    except BaseException:
        notices.detach()
        raise
    try:
        monitor = _monitor(processing, events)
    except BaseException:
        processing.close()
        notices.detach()
        raise
    controller = Controller(processing, max_sets=frames, monitor=monitor)
    what = (
        f"synthetic scene {scene}" if scene else redact(str(room or source or "bundled demo"))
    )  # a camera URL's password never reaches the title bar
    title = f"Room capture - {what} ({'calibrated' if processing.calibrated else 'uncalibrated'})"
    try:
        window = MainWindow(controller, title, overlay=overlay, notices=notices)
    except BaseException:
        controller.close()
        notices.detach()
        raise
    controller.start()
    return window


def _monitor(processing: Processing, events: Path | None) -> Monitor:
    """The monitor of this run: the room file's rules (a synthetic scene: its own room); its events
    in ``events`` (default: a new file in the user's data folder, named after the room and the time)."""
    config = processing.monitor_config or monitor_config(processing.room_file)
    return open_monitor(config, events or default_events_path(config.room), wall_start=processing.wall_start)


def new_application() -> QApplication:
    """The QApplication, with OpenGL contexts that share resources: pyqtgraph compiles its
    shaders once, and every 3D view (main window, later windows) must be able to use them."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
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
        refine=args.refine,
        events=getattr(args, "events", None),
        scene=getattr(args, "scene", None),
    )
    window.resize(1600, 900)
    window.show()
    if getattr(args, "record", None) is not None and not window.start_recording(args.record, store_video=not args.no_video):
        raise AppError(window.message)
    if getattr(args, "stream", None):  # --stream URLs (a room file's [streaming] targets start with the controller)
        from recording.streaming import parse_stream_url

        window.controller.start_streaming([parse_stream_url(url) for url in args.stream])
    if screenshot:
        _schedule_screenshot(window, args.screenshot, args.frames)
    code = app.exec()
    window.shutdown()
    if screenshot and window.controller.state == RunnerState.FAILED:  # e.g. a room whose cameras never delivered
        raise AppError(window.controller.error or "processing failed")
    return code


def run_wizard(args: argparse.Namespace) -> int:
    """``--calibrate FOLDER``: the calibration wizard on a folder of per-camera calibration videos,
    or ``--calibrate room.toml`` on the room's live cameras (``--intrinsics`` may give the cameras'
    intrinsics, ``--board`` the board)."""
    from app.wizard import CalibrationWizard
    from calibration.board import load_board

    if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise AppError("no display to open the calibration wizard on: run on a desktop or under xvfb-run")
    board = load_board(args.board) if args.board is not None else None
    live = str(args.calibrate).endswith(".toml")  # a room file: calibrate its live cameras
    replay, cameras = _wizard_source(args.calibrate, live)
    if args.intrinsics is not None:
        from calibration.formats import read_cameras

        given = {c.name: c for c in read_cameras(args.intrinsics)}
        cameras = [given.get(c.name, c) for c in cameras]
    app = new_application()
    wizard = CalibrationWizard(replay, cameras, board=board, recorded=not live)
    wizard.saved.connect(lambda path: print(f"saved calibration {path}"))
    wizard.show()
    code = app.exec()
    replay.close()
    return code


def _wizard_source(path: Path, live: bool) -> tuple[FrameSetSource, list[Camera]]:
    """The wizard's frames and (uncalibrated) cameras: a room file's live cameras, or a folder of
    per-camera calibration videos."""
    if live:
        from capture.room import load_room, open_room

        room = load_room(path)
        room.calibration = None
        return open_room(room)
    from capture.replay import SessionReplay
    from capture.sources import sources_from_path
    from core.camera import uncalibrated

    replay = SessionReplay(sources_from_path(path))
    replay.open()  # the videos' sizes are known once they are open
    return replay, [uncalibrated(s.name, s.image_size) for s in replay.sources]


def _schedule_screenshot(window: MainWindow, path: Path, frames: int) -> None:
    """Poll until ``frames`` sets were processed and the newest is shown, then save and quit."""

    def check() -> None:
        controller = window.controller
        done = controller.processed >= frames or controller.state in (RunnerState.FINISHED, RunnerState.FAILED)
        if done and controller.latest() is window.shown:
            window.refresh()
            window.grab().save(str(path))
            print(f"saved screenshot {path} after {controller.processed} frame-sets")
            QApplication.quit()

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(100)
