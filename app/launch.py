"""Start the GUI: open the session, start processing, show the window (or take a screenshot)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from app.main_window import MainWindow
from capture.session import open_session
from engine.detect import create_detector
from engine.pipeline import Pipeline
from engine.runner import PipelineRunner, RunnerState


def build_window(args: argparse.Namespace, detector_args: Callable[..., dict[str, Any]]) -> MainWindow:
    screenshot = getattr(args, "screenshot", None) is not None
    session = open_session(args.source, args.calibration, args.uncalibrated, realtime=not screenshot, loop=not (args.no_loop or screenshot))
    pipeline = Pipeline(create_detector(args.detector, **detector_args(args, session.cameras)), session.cameras)
    runner = PipelineRunner(session.replay, pipeline, max_sets=args.frames)
    title = f"Room capture - {args.source or 'bundled demo'} ({'calibrated' if session.calibrated else 'uncalibrated'})"
    window = MainWindow(runner, session.cameras, title)
    runner.start()
    return window


def run_gui(args: argparse.Namespace, detector_args: Callable[..., dict[str, Any]]) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = build_window(args, detector_args)
    window.resize(1600, 900)
    window.show()
    if args.screenshot is not None:
        _schedule_screenshot(window, args.screenshot, args.frames)
    code = app.exec()
    window.runner.stop()
    window.runner.pipeline.close()
    return code


def _schedule_screenshot(window: MainWindow, path: object, frames: int) -> None:
    """Poll until ``frames`` sets were processed and shown, then save the window and quit."""

    def check() -> None:
        runner = window.runner
        done = runner.processed >= frames or runner.state in (RunnerState.FINISHED, RunnerState.FAILED)
        if done and window.runner.latest() is window.shown:
            window.refresh()
            window.grab().save(str(path))
            print(f"saved screenshot {path} after {runner.processed} frame-sets")
            QApplication.quit()

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(100)
