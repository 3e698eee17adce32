"""The main window: camera grid, 3D viewport, status bar. Repaints from a timer with the
newest result; processing runs on the runner's threads and never blocks the UI."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QActionGroup
from PyQt6.QtWidgets import QFileDialog, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from app.camera_view import OVERLAYS, CameraGrid
from app.health import HealthRow
from app.notices import Notices
from app.viewport import Viewport3D
from core.camera import Camera, rig_calibrated
from core.errors import AppError
from core.types import BodyEstimate
from engine.runner import PipelineRunner, RunnerState

REFRESH_MS = 33
NOTICE_CHARS = 90  # the status area shows the newest warning this long; its tooltip has them all


class MainWindow(QMainWindow):
    def __init__(
        self,
        runner: PipelineRunner,
        cameras: list[Camera],
        title: str = "Room capture",
        overlay: str = "both",
        notices: Notices | None = None,
    ) -> None:
        super().__init__()
        self.runner = runner
        self.notices = notices
        self.cameras = list(cameras)
        self.message = ""  # the last user-facing notice (e.g. a calibration that could not load)
        self.setWindowTitle(title)
        aspect = float(np.median([c.image_size[0] / c.image_size[1] for c in cameras]))
        self.grid = CameraGrid([c.name for c in cameras], aspect, overlay)
        self.viewport = Viewport3D(cameras)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.grid)
        splitter.addWidget(self.viewport)
        splitter.setSizes([900, 700])
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        self.health = HealthRow()
        self.health.setVisible(hasattr(runner.replay, "health"))
        column.addWidget(self.health)
        column.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.overlay_actions = self._overlay_toolbar(overlay)
        room = self.menuBar().addMenu("&Room")
        load = room.addAction("Load calibration…")
        load.triggered.connect(self._choose_calibration)
        edit = room.addAction("Edit room cameras…")
        edit.triggered.connect(self._edit_room)
        self.recorder = None
        self._unsubscribe_recorder = None
        self.record_action = QAction("● Record", self, checkable=True)
        self.record_action.setToolTip("Record the session (videos, timestamps, results) into a new folder")
        self.record_action.triggered.connect(self._toggle_recording)
        self.toolBar.addSeparator()
        self.toolBar.addAction(self.record_action)
        self.status = QLabel("starting...")
        if runner.pipeline.backend_description:
            self.status.setToolTip(f"inference backend: {runner.pipeline.backend_description}")
        self.statusBar().addWidget(self.status, 1)
        self.notice = QLabel("")  # the newest warning (all of them in its tooltip)
        self.notice.setStyleSheet("color: #b35c00")
        self.statusBar().addPermanentWidget(self.notice)
        self.shown: BodyEstimate | None = None
        self.shown_count = 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)

    def _overlay_toolbar(self, overlay: str) -> dict[str, QAction]:
        """Skeleton / Mesh / Both: what the camera views draw over the image."""
        bar = self.toolBar = self.addToolBar("View")
        bar.setMovable(False)
        bar.addWidget(QLabel(" Camera views: "))
        group = QActionGroup(self)
        actions = {}
        for mode in OVERLAYS:
            action = QAction(mode.capitalize(), self, checkable=True)
            action.setChecked(mode == overlay)
            action.setToolTip(f"Draw the {'skeleton and the mesh' if mode == 'both' else mode} over the camera images")
            action.triggered.connect(lambda _=False, m=mode: self.set_overlay(m))
            group.addAction(action)
            bar.addAction(action)
            actions[mode] = action
        return actions

    def set_overlay(self, overlay: str) -> None:
        for view in self.grid.views.values():
            view.set_overlay(overlay)
        self.overlay_actions[overlay].setChecked(True)

    @property
    def calibrated(self) -> bool:
        return rig_calibrated(self.cameras)

    def _choose_calibration(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Room calibration", "", "Calibration (*.toml *.qca.txt *.txt);;All files (*)")
        if name:
            self.load_calibration(name)

    def load_calibration(self, path: str) -> bool:
        """Switch the running pipeline to the cameras of a calibration file (no restart). A bad
        file leaves everything as it was and says why in the status bar."""
        from pathlib import Path

        from capture.session import match_cameras

        try:
            cameras = match_cameras(Path(path), [(c.name, c.image_size) for c in self.cameras])
        except AppError as exc:
            self.message = f"calibration not loaded: {exc}"
            self.status.setText(self.status_text())
            return False
        self.runner.pipeline.set_cameras(cameras)
        self.cameras = cameras
        self.viewport.set_cameras(cameras)
        self.message = f"calibration loaded: {path}"
        title = self.windowTitle().replace("(uncalibrated)", "(calibrated)")
        self.setWindowTitle(title)
        return True

    def _edit_room(self) -> None:
        from app.room_dialog import RoomDialog

        RoomDialog(parent=self).exec()

    def _toggle_recording(self, checked: bool) -> None:
        if not checked:
            self.stop_recording()
            return
        folder = QFileDialog.getExistingDirectory(self, "Record into (a new session folder is made inside)")
        if not folder:
            self.record_action.setChecked(False)
            return
        import datetime
        from pathlib import Path

        self.start_recording(Path(folder) / datetime.datetime.now().strftime("session_%Y%m%d_%H%M%S"))

    def start_recording(self, folder: object, store_video: bool = True) -> bool:
        """Record everything the pipeline produces into ``folder`` until :meth:`stop_recording`."""
        from recording.writer import SessionRecorder, min_free_bytes

        try:
            self.recorder = SessionRecorder(
                folder, self.cameras, store_video=store_video, min_free_bytes=min_free_bytes()  # type: ignore[arg-type]
            ).start()
        except AppError as exc:
            self.message = f"not recording: {exc}"
            self.record_action.setChecked(False)
            return False
        self._unsubscribe_recorder = self.runner.pipeline.subscribe(self.recorder.add)
        self.record_action.setChecked(True)
        self.message = f"recording into {folder}"
        return True

    def stop_recording(self) -> None:
        if self._unsubscribe_recorder is not None:
            self._unsubscribe_recorder()
            self._unsubscribe_recorder = None
        if self.recorder is not None:
            self.recorder.stop()
            reason = self.recorder.message
            self.message = reason or f"recorded {self.recorder.recorded} frame-sets into {self.recorder.folder}"
            self.recorder = None
        self.record_action.setChecked(False)

    def refresh(self) -> None:
        """Show the newest result if it is new; update the status line."""
        estimate = self.runner.latest()
        if estimate is not None and estimate is not self.shown:
            self.shown = estimate
            self.shown_count += 1
            self._show(estimate)
        if self.recorder is not None:
            if self.recorder.message:  # stopped by itself (disk full): the live view goes on
                self.stop_recording()
            else:
                self.message = f"● recording {self.recorder.recorded} frame-sets into {self.recorder.folder}"
        self.status.setText(self.status_text())
        self._show_notices()
        health = getattr(self.runner.replay, "health", None)
        if health is not None:
            states = health()
            self.health.update_health(states, getattr(self.runner.replay, "skew_ms", None))
            for h in states:  # a camera without pictures says why in its view
                view = self.grid.views.get(h.name)
                if (
                    view is not None
                    and h.state.value != "live"
                    and (self.shown is None or h.name not in self.shown.frameset.frames)
                ):
                    view.set_missing(f"no picture: {h.state.value}" + (f" ({h.error})" if h.error else ""))

    def status_text(self) -> str:
        stats = self.runner.stats()
        if stats.state == RunnerState.FAILED:
            return f"error: {stats.error}"
        parts = [f"{stats.state.value}", f"{stats.fps:.1f} fps", f"{stats.processed} sets",
                 "calibrated" if self.calibrated else "uncalibrated (weak perspective per view)"]  # fmt: skip
        backend = self.runner.pipeline.backend_description
        if backend:
            parts.append(f"backend: {backend.split(' — ')[0]}")
        if stats.skipped:
            parts.append(f"{stats.skipped} dropped")
        if stats.behind:
            parts.append(f"slower than the recording: {stats.fps:.1f} of {stats.recording_fps:g} sets/s shown, the rest skipped")
        if self.shown is not None:
            t = self.shown.timings_ms
            parts.append(" ".join(f"{k} {t[k]:.0f} ms" for k in ("decode", "detect", "triangulate", "body", "total") if k in t))
        if self.message:
            parts.append(self.message)
        return "  |  ".join(parts)

    def _show_notices(self) -> None:
        items = self.notices.items() if self.notices is not None else []
        if items:
            newest = items[-1] if len(items[-1]) <= NOTICE_CHARS else items[-1][: NOTICE_CHARS - 1] + "…"
            self.notice.setText(f"⚠ {newest}" + (f" (+{len(items) - 1} more)" if len(items) > 1 else ""))
            self.notice.setToolTip("\n".join(items))

    def _show(self, estimate: BodyEstimate) -> None:
        for name, view in self.grid.views.items():
            frame = estimate.frameset.frames.get(name)
            if frame is None:
                continue
            error = estimate.reprojection_px.get(name)
            camera = next((c for c in self.cameras if c.name == name), None)
            note = "calibrated" if camera is not None and camera.calibrated else "weak perspective"
            if error is not None and np.isfinite(error):
                note += f"  reproj {error:.0f} px"
            view.set_frame(frame.image, estimate.keypoints2d.get(name), note, estimate.views.get(name))
        self.viewport.set_skeleton(estimate.keypoints3d)
        self.viewport.set_mesh(estimate.mesh3d, estimate.mesh_faces)

    def shutdown(self) -> None:
        """Stop processing and release the cameras and the detector (idempotent); a recording in
        progress is finished first."""
        self.stop_recording()
        self.timer.stop()
        self.runner.stop()
        self.runner.replay.close()
        self.runner.pipeline.close()
        if self.notices is not None:
            self.notices.detach()

    def closeEvent(self, event: object) -> None:
        self.shutdown()
        super().closeEvent(event)  # type: ignore[arg-type]
