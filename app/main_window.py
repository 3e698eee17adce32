"""The main window: camera grid, 3D viewport, the list of the people present, status bar; with a monitor, the
events panel, the alert banner, the zone editor and the privacy switches. Repaints from a timer with the newest
result (and polls the monitor's new events); processing runs on the runner's threads and never blocks the UI."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyqtgraph.opengl as gl
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QActionGroup, QCloseEvent
from PyQt6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.camera_view import OVERLAYS, CameraGrid
from app.controller import Controller
from app.events_panel import AlertBanner, EventsPanel
from app.health import HealthRow
from app.notices import Notices
from app.people import PeopleList, minutes_seconds
from app.viewport import Viewport3D
from app.zone_editor import kind_qcolor
from core.camera import Camera
from core.errors import AppError
from core.types import SEVERITIES, BodyEstimate, Event
from engine.runner import RunnerState
from monitoring.config import Zone
from monitoring.monitor import Monitor
from monitoring.state import Observation, alone_view, people_count

REFRESH_MS = 33
NOTICE_CHARS = 90  # the status area shows the newest warning this long; its tooltip has them all
PER_VIEW_PEOPLE = "Uncalibrated: people are tracked in each view separately; calibrate the room to match them across views."


class MainWindow(QMainWindow):
    def __init__(
        self,
        controller: Controller,
        title: str = "Room capture",
        overlay: str = "both",
        notices: Notices | None = None,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.notices = notices
        self.monitor: Monitor | None = getattr(controller, "monitor", None)  # a stand-in controller may have none
        self.acknowledger: str | None = None  # who acknowledges alerts (asked once per session)
        cameras = controller.cameras
        self.message = ""  # the last user-facing notice (e.g. a calibration that could not load)
        self.setWindowTitle(title)
        aspect = float(np.median([c.image_size[0] / c.image_size[1] for c in cameras]))
        self.grid = CameraGrid([c.name for c in cameras], aspect, overlay)
        self.viewport = Viewport3D(cameras)
        self.people = PeopleList()
        self.people.setVisible(False)  # until someone is tracked (keypoints-only runs never show it)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.viewport)
        right.addWidget(self.people)
        right.setSizes([640, 160])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.grid)
        splitter.addWidget(right)
        splitter.setSizes([900, 700])
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        self.banner = AlertBanner()
        self.banner.acknowledge_requested.connect(self.acknowledge)
        column.addWidget(self.banner)
        self.health = HealthRow()
        self.health.setVisible(controller.has_health)
        column.addWidget(self.health)
        column.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.overlay_actions = self._overlay_toolbar(overlay)
        self.events = EventsPanel()
        self.events_dock = self._events_dock()
        self.zone_lines: list[gl.GLLinePlotItem] = []
        self.last_recording: Path | None = None  # File -> Export... offers it
        self._file_menu()
        self._room_menu()
        self._view_menu()
        self.record_action = self._checkable("● Record", "Record the session (videos, timestamps, results) into a new folder")
        self.record_action.triggered.connect(self._toggle_recording)
        self.toolBar.addSeparator()
        self.toolBar.addAction(self.record_action)
        self.status = QLabel("starting...")
        if controller.backend_description:
            self.status.setToolTip(f"inference backend: {controller.backend_description}")
        self.notice = QLabel("")  # the newest warning (all of them in its tooltip)
        self.notice.setStyleSheet("color: #b35c00")
        status_bar = self.statusBar()
        assert status_bar is not None  # QMainWindow makes one on first use
        status_bar.addWidget(self.status, 1)
        status_bar.addPermanentWidget(self.notice)
        self.window_notices: list[str] = []  # what the window itself says in the notices area
        self.shown: BodyEstimate | None = None
        self.shown_count = 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)

    def _checkable(self, text: str, tip: str) -> QAction:
        action = QAction(text, self)
        action.setCheckable(True)
        action.setToolTip(tip)
        return action

    def _file_menu(self) -> None:
        menu = QMenu("&File", self)
        menu.addAction("Export…", self.open_export)
        menu.addSeparator()
        menu.addAction("Stream to…", self._ask_stream)
        menu.addAction("Stop streaming", self.stop_streaming)
        menu_bar = self.menuBar()
        assert menu_bar is not None  # QMainWindow makes one on first use
        menu_bar.addMenu(menu)

    def open_export(self) -> QDialog:
        """File -> Export...: the dialog (non-modal; the export runs on its own thread)."""
        from app.export_dialog import ExportDialog

        recorder = self.controller.recorder
        dialog = ExportDialog(self, recorder.folder if recorder is not None else self.last_recording)
        dialog.show()
        return dialog

    def _ask_stream(self) -> None:
        from PyQt6.QtWidgets import QInputDialog

        text, ok = QInputDialog.getText(self, "Stream to", "Send every body live to (vmc://HOST[:PORT], osc://HOST:PORT, json://HOST:PORT):",
                                        text="vmc://127.0.0.1:39539")  # fmt: skip
        if ok and text.strip():
            self.start_stream(text)

    def start_stream(self, url: str) -> bool:
        """File -> Stream to...: also send every result to ``url`` (recording.streaming); a bad address
        is said in the status area and nothing else changes."""
        from recording.streaming import parse_stream_url

        try:
            self.controller.start_streaming([parse_stream_url(url, "stream address")])
        except AppError as exc:
            self.message = str(exc)
            return False
        self.message = f"streaming to {url.strip()}"
        return True

    def stop_streaming(self) -> None:
        running = bool(self.controller.streams)
        self.controller.stop_streaming()
        if running:
            self.message = "streaming stopped"

    def _room_menu(self) -> None:
        room = QMenu("&Room", self)
        room.addAction("Load calibration…", self._choose_calibration)
        room.addAction("Edit room cameras…", self._edit_room)
        zones = room.addAction("Zones…", self.edit_zones)
        assert zones is not None
        zones.setEnabled(self.monitor is not None)
        menu_bar = self.menuBar()
        assert menu_bar is not None  # QMainWindow makes one on first use
        menu_bar.addMenu(room)

    def _view_menu(self) -> None:
        """Privacy (mesh only, blurred faces; defaults from the room file's [privacy]), the events
        panel and the alert sound."""
        privacy = self.monitor.config.privacy if self.monitor is not None else None
        view = QMenu("&View", self)
        self.mesh_only_action = self._checkable("Mesh only, all cameras", "Draw the bodies without any camera picture")
        self.mesh_only_action.toggled.connect(self.set_mesh_only)
        self.blur_action = self._checkable("Blur faces", "Blur the faces in the camera pictures")
        self.blur_action.toggled.connect(self.set_blur_faces)
        self.sound_action = self._checkable("Sound on alerts", "Beep when an alert is raised or escalated")
        for action in (self.mesh_only_action, self.blur_action):
            view.addAction(action)
        view.addSeparator()
        view.addAction(self.sound_action)
        toggle = self.events_dock.toggleViewAction()
        assert toggle is not None
        view.addAction(toggle)
        menu_bar = self.menuBar()
        assert menu_bar is not None
        menu_bar.addMenu(view)
        if privacy is not None:
            self.mesh_only_action.setChecked(privacy.display == "mesh-only")
            for name in privacy.mesh_only_cameras:
                if name in self.grid.views:
                    self.grid.views[name].set_mesh_only(True)
            self.blur_action.setChecked(privacy.blur_faces)
            self._show_zones(self.monitor.config.zones if self.monitor is not None else ())

    def set_mesh_only(self, on: bool) -> None:
        """Privacy: every camera view draws the bodies without the camera picture (or all show it again)."""
        for view in self.grid.views.values():
            view.set_mesh_only(on)
        self.mesh_only_action.setChecked(on)

    def set_blur_faces(self, on: bool) -> None:
        for view in self.grid.views.values():
            view.set_blur_faces(on)
        self.blur_action.setChecked(on)

    def _events_dock(self) -> QDockWidget:
        dock = QDockWidget("Events", self)
        dock.setObjectName("events")
        dock.setWidget(self.events)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [380], Qt.Orientation.Horizontal)
        dock.setVisible(self.monitor is not None)
        self.events.acknowledge_requested.connect(self.acknowledge)
        self.events.jump_requested.connect(self.jump_to)
        if self.monitor is not None:
            self.events.set_can_jump(self.controller.can_seek)
        return dock

    def _overlay_toolbar(self, overlay: str) -> dict[str, QAction]:
        """Skeleton / Mesh / Both: what the camera views draw over the image."""
        bar = self.toolBar = QToolBar("View", self)
        self.addToolBar(bar)
        bar.setMovable(False)
        bar.addWidget(QLabel(" Camera views: "))
        group = QActionGroup(self)
        actions = {}
        for mode in OVERLAYS:
            what = "skeleton and the mesh" if mode == "both" else mode
            action = self._checkable(mode.capitalize(), f"Draw the {what} over the camera images")
            action.setChecked(mode == overlay)
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
    def cameras(self) -> list[Camera]:
        return self.controller.cameras

    @property
    def calibrated(self) -> bool:
        return self.controller.calibrated

    def _choose_calibration(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Room calibration", "", "Calibration (*.toml *.qca.txt *.txt);;All files (*)")
        if name:
            self.load_calibration(name)

    def load_calibration(self, path: str) -> bool:
        """Switch the running pipeline to the cameras of a calibration file (no restart). A bad
        file leaves everything as it was and says why in the status bar."""
        try:
            cameras = self.controller.load_calibration(Path(path))
        except AppError as exc:
            self.message = f"calibration not loaded: {exc}"
            self.status.setText(self.status_text())
            return False
        self.viewport.set_cameras(cameras)
        if PER_VIEW_PEOPLE in self.window_notices:
            self.window_notices.remove(PER_VIEW_PEOPLE)
        self.message = f"calibration loaded: {path}"
        title = self.windowTitle().replace("(uncalibrated)", "(calibrated)")
        self.setWindowTitle(title)
        return True

    def _edit_room(self) -> None:
        from app.room_dialog import RoomDialog

        RoomDialog(parent=self).exec()

    def edit_zones(self) -> None:
        from app.zone_editor import ZoneEditor

        if self.monitor is not None:
            ZoneEditor(self.cameras, self.monitor.config.zones, self.controller.room_file, self.set_zones, self).exec()

    def set_zones(self, zones: list[Zone]) -> None:
        """The zone editor saved ``zones``: the running monitor uses them, the viewport draws them."""
        self.controller.set_zones(zones)
        self._show_zones(zones)
        self.message = f"{len(zones)} zone(s) saved into {self.controller.room_file}"

    def _show_zones(self, zones: tuple[Zone, ...] | list[Zone]) -> None:
        """The zones' outlines on the floor of the 3D viewport."""
        for item in self.zone_lines:
            self.viewport.removeItem(item)
        self.zone_lines = []
        for zone in zones:
            ring = np.vstack([zone.polygon, zone.polygon[:1]])
            pos = np.column_stack([ring, np.full(len(ring), 0.01)])
            item = gl.GLLinePlotItem(pos=pos, mode="line_strip", color=kind_qcolor(zone.kind), width=2, antialias=True)
            self.viewport.addItem(item)
            self.zone_lines.append(item)

    def acknowledge(self, alert_id: int) -> bool:
        """Acknowledge an alert as the person at the screen (their name or role is asked once)."""
        if self.acknowledger is None:
            name, ok = QInputDialog.getText(self, "Acknowledge", "Your name or role (asked once this session):")
            if not ok or not name.strip():
                return False
            self.acknowledger = name.strip()
        self.controller.acknowledge(alert_id, self.acknowledger)
        self._show_monitoring()
        return True

    def jump_to(self, t: float) -> None:
        """Replay from session time ``t`` (an event's)."""
        self.controller.seek(t)
        self.message = f"replaying from t = {t:.1f} s"

    def _show_monitoring(self) -> None:
        """New events into the panel (a beep for alerts when asked), the banner, postures and zones."""
        monitor = self.monitor
        if monitor is None:
            return
        events = self.controller.take_events()
        if events:
            self.events.add_events(events)
            if self.sound_action.isChecked() and any(_alerting(e) for e in events):
                QApplication.beep()
        alerts = self.controller.pending_alerts()
        walls = {a.id: self.events.walls.get(a.id) or monitor.wall_text(a.raised_t) for a in alerts}
        self.banner.show_alerts(alerts, walls)
        if not self.people.isHidden():
            self._show_postures(monitor)
        error = self.controller.monitor_error
        if error is not None and error not in self.window_notices:
            self.window_notices.append(error)
        self.controller.check_cameras(time.monotonic())  # all cameras down: no frame-set tells the monitor
        for deleted in self.controller.check_retention():  # once a day: sessions past the room's retention
            self.window_notices.append(f"retention: deleted the recorded session {deleted}")

    def _toggle_recording(self, checked: bool) -> None:
        if not checked:
            self.stop_recording()
            return
        folder = QFileDialog.getExistingDirectory(self, "Record into (a new session folder is made inside)")
        if not folder:
            self.record_action.setChecked(False)
            return
        import datetime

        self.start_recording(Path(folder) / datetime.datetime.now().strftime("session_%Y%m%d_%H%M%S"))

    def start_recording(self, folder: Path, store_video: bool = True) -> bool:
        """Record everything the pipeline produces into ``folder`` until :meth:`stop_recording`."""
        try:
            self.controller.start_recording(Path(folder), store_video)
        except AppError as exc:
            self.message = f"not recording: {exc}"
            self.record_action.setChecked(False)
            return False
        self.record_action.setChecked(True)
        self.last_recording = Path(folder)
        self.message = f"recording into {folder}"
        return True

    def stop_recording(self) -> None:
        told = self.controller.stop_recording()
        if told is not None:
            self.message = told
        self.record_action.setChecked(False)

    def refresh(self) -> None:
        """Show the newest result if it is new; update the status line."""
        estimate = self.controller.latest()
        if estimate is not None and estimate is not self.shown:
            self.shown = estimate
            self.shown_count += 1
            self._show(estimate)
        recorder = self.controller.recorder
        if recorder is not None:
            if recorder.message:  # stopped by itself (disk full): the live view goes on
                self.stop_recording()
            else:
                self.message = f"● recording {recorder.recorded} frame-sets into {recorder.folder}"
        self._show_monitoring()
        self.status.setText(self.status_text())
        self._show_notices()
        self._show_health()

    def _show_health(self) -> None:
        """A live room's camera health row; a camera without pictures says why in its view."""
        states = self.controller.health()
        if states is not None:
            self.health.update_health(states, self.controller.skew_ms)
            for h in states:
                view = self.grid.views.get(h.name)
                if (
                    view is not None
                    and h.state.value != "live"
                    and (self.shown is None or h.name not in self.shown.frameset.frames)
                ):
                    view.set_missing(f"no picture: {h.state.value}" + (f" ({h.error})" if h.error else ""))

    def status_text(self) -> str:
        stats = self.controller.stats()
        if stats.state == RunnerState.FAILED:
            return f"error: {stats.error}"
        parts = [f"{stats.state.value}", f"{stats.fps:.1f} fps", f"{stats.processed} sets",
                 "calibrated" if self.calibrated else "uncalibrated (a body per view)"]  # fmt: skip
        if self.shown is not None and self.shown.people:
            tracks = len(self.shown.people)
            n = people_count(Observation(p.id, None, alone_view(p)) for p in self.shown.people)
            each = f" ({tracks} tracked, each in one view)" if tracks != n else ""  # uncalibrated: as the monitor counts
            parts.append(f"{n} {'person' if n == 1 else 'people'}{each}")
        backend = self.controller.backend_description
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
        items = (self.notices.items() if self.notices is not None else []) + self.window_notices
        if items:
            newest = items[-1] if len(items[-1]) <= NOTICE_CHARS else items[-1][: NOTICE_CHARS - 1] + "…"
            self.notice.setText(f"⚠ {newest}" + (f" (+{len(items) - 1} more)" if len(items) > 1 else ""))
            self.notice.setToolTip("\n".join(items))
        else:  # the window's own notice can go (a calibration was loaded)
            self.notice.setText("")
            self.notice.setToolTip("")

    def _show(self, estimate: BodyEstimate) -> None:
        for name, view in self.grid.views.items():
            frame = estimate.frameset.frames.get(name)
            if frame is None:
                continue
            error = estimate.reprojection_px.get(name)
            camera = next((c for c in self.cameras if c.name == name), None)
            note = "calibrated" if camera is not None and camera.calibrated else "uncalibrated"
            if error is not None and np.isfinite(error):
                note += f"  reproj {error:.0f} px"
            view.set_frame(frame.image, estimate.keypoints2d.get(name), note, estimate.views.get(name), estimate.people)
        self._show_people(estimate)

    def _show_people(self, estimate: BodyEstimate) -> None:
        """Everyone tracked, each in their colour; a result without people shows its one body."""
        people = estimate.people
        self.viewport.set_people(people, estimate.mesh_faces)
        self.viewport.set_skeleton(None if people else estimate.keypoints3d)
        self.viewport.set_mesh(None if people else estimate.mesh3d, estimate.mesh_faces)
        if people:
            self.people.setVisible(True)
            if not self.calibrated and PER_VIEW_PEOPLE not in self.window_notices:
                self.window_notices.append(PER_VIEW_PEOPLE)
        if not self.people.isHidden():
            self.people.show_people(people, estimate.timestamp)

    def _show_postures(self, monitor: Monitor) -> None:
        """The monitor's posture and zone of each person in the list ("sitting 0:12, bed")."""
        states = dict(monitor.states)  # written on the processing thread: a copy to read
        for row, person_id in enumerate(self.people.ids):
            state = states.get(person_id)
            item = self.people.item(row, 1)
            if state is None or item is None:
                continue
            text = f"{state.posture.replace('_', ' ')} {minutes_seconds(state.duration)}"
            text += f", {state.zone}" if state.zone else ""
            if item.text() != text:
                item.setText(text)

    def shutdown(self) -> None:
        """Stop processing and release the cameras and the detector (idempotent); a recording in
        progress is finished first."""
        self.stop_recording()
        self.timer.stop()
        self.controller.close()
        if self.notices is not None:
            self.notices.detach()

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self.shutdown()
        super().closeEvent(event)


def _alerting(event: Event) -> bool:
    """An event worth a sound: an alert (not a notice) raised or escalated."""
    return event.phase in ("raised", "escalated") and SEVERITIES.index(event.severity) >= SEVERITIES.index("warning")
