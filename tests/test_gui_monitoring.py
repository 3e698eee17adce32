"""Monitoring in the real window under Xvfb: a fall shows in the events panel and the banner, and
acknowledging it hides the banner and writes the acknowledged event into the events file; the zone
editor adds a zone by clicks and saves it into a room file; mesh-only views show no camera pixel;
face blur; the replay's seek (jump to an event)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("GUI tests need a display: run them with `make test` (Xvfb)", allow_module_level=True)

from PyQt6.QtCore import Qt  # noqa: E402
from PyQt6.QtWidgets import QApplication, QInputDialog  # noqa: E402

from app.controller import Controller  # noqa: E402
from app.events_panel import SEVERITY_COLORS, alert_text, clock_text  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.people import person_color  # noqa: E402
from app.processing import open_processing  # noqa: E402
from app.zone_editor import NEEDS_CALIBRATION, ZoneEditor  # noqa: E402
from capture.replay import SessionReplay  # noqa: E402
from capture.sources import SyntheticSource  # noqa: E402
from core.camera import uncalibrated  # noqa: E402
from core.paths import DEMO_DIR  # noqa: E402
from core.types import BodyEstimate, Frame, FrameSet, Person  # noqa: E402
from engine.runner import RunnerState  # noqa: E402
from monitoring.config import Zone, load_config  # noqa: E402
from monitoring.live import open_monitor  # noqa: E402
from monitoring.state import Landmarks, Observation  # noqa: E402
from tests.monitoring_poses import keypoints, motion  # noqa: E402
from tests.test_gui import image_array  # noqa: E402
from tests.test_gui_people import Feed, person, room, show  # noqa: E402

EVENTS_SHOT = Path("/tmp/monitoring_events.png")
ZONES_SHOT = Path("/tmp/monitoring_zones.png")
MESH_ONLY_SHOT = Path("/tmp/monitoring_mesh_only.png")
BED = Zone("bed", "bed", np.array([[0.5, -0.5], [1.5, -0.5], [1.5, 0.5], [0.5, 0.5]]), 0.5)


def room_copy(tmp_path: Path, privacy: str = "") -> Path:
    """The demo's room file in ``tmp_path`` (zones are saved there, never into the assets)."""
    path = tmp_path / "room.toml"
    shutil.copy(DEMO_DIR / "room.toml", path)
    if privacy:
        text = path.read_text()
        text = (
            text.replace("[privacy]\n", f"[privacy]\n{privacy}\n") if "[privacy]\n" in text else f"{text}\n[privacy]\n{privacy}\n"
        )
        path.write_text(text)
    return path


@pytest.fixture
def owned(qtbot):
    """Widgets a test makes, shut down and deleted when it ends: left to the garbage collector, a
    window (and its OpenGL viewport) could be destroyed in the middle of the next test's painting."""
    widgets: list = []
    yield widgets.append
    for widget in widgets:
        if isinstance(widget, MainWindow):
            widget.shutdown()
        widget.close()
        widget.deleteLater()
    qtbot.wait(20)


@pytest.fixture
def monitored(qtbot, owned, tmp_path: Path):
    """The window on the demo (fake detector, 3 frame-sets) with a monitor writing tmp_path/events.jsonl;
    its room file is a copy in tmp_path that shows cam02 mesh-only."""
    processing = open_processing(detector="fake", with_body=False)
    processing.room_file = room_copy(tmp_path, 'mesh_only_cameras = ["cam02"]')
    monitor = open_monitor(load_config(processing.room_file), tmp_path / "events.jsonl", with_sinks=False)
    controller = Controller(processing, max_sets=3, monitor=monitor)
    window = MainWindow(controller, "monitoring")
    owned(window)
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    controller.start()
    qtbot.waitUntil(lambda: controller.state is RunnerState.FINISHED and controller.latest() is window.shown, timeout=60000)
    return window


def fall_estimates(start: float) -> list[BodyEstimate]:
    """Person 2 standing, then falling to the floor in 0.5 s (as fast as a body can: free fall from
    standing takes about that long) and staying there (hand-placed world skeletons)."""
    times, frames = motion([(0.0, "standing", 1.0, 0.0), (1.0, "standing", 1.0, 0.0), (1.5, "on_floor", 1.0, 0.0),
                            (4.0, "on_floor", 1.0, 0.0)])  # fmt: skip
    return [BodyEstimate(FrameSet({}, start + t, 1000 + i), {}, people=[Person(2, {}, points)])
            for i, (t, points) in enumerate(zip(times, frames, strict=True))]  # fmt: skip


def test_a_fall_shows_in_the_panel_and_banner_until_acknowledged(monitored: MainWindow, qtbot, monkeypatch, tmp_path) -> None:
    window, controller = monitored, monitored.controller
    assert window.events_dock.isVisible() and not window.banner.isVisible()
    assert window.grid.views["cam02"].mesh_only and not window.grid.views["cam01"].mesh_only  # the room's [privacy]
    beeps: list[int] = []
    monkeypatch.setattr(QApplication, "beep", lambda: beeps.append(1))
    window.sound_action.setChecked(True)  # View -> Sound on alerts (off by default)
    fall = fall_estimates(start=controller.monitor.t + 1.0)
    for estimate in fall:
        controller._watch(estimate)  # what the processing thread does with every result
    window.refresh()
    assert len(beeps) == 1
    falls = [a for a in controller.pending_alerts() if a.type == "fall"]
    assert len(falls) == 1 and falls[0].person == 2
    rows = window.events.row_texts()
    fall_rows = [r for r in rows if r[1] == "Fall"]
    assert len(fall_rows) == 1 and fall_rows[0][2] == "#2"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", fall_rows[0][0])
    times = [window.events.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(len(rows))]
    assert len(rows) >= 2 and times == sorted(times, reverse=True)  # newest on top
    window.events.table.selectRow([r[1] for r in rows].index("People count: someone arrived"))
    assert not window.events.acknowledge_button.isEnabled()  # a notice: nothing to acknowledge
    window.events.table.selectRow(rows.index(fall_rows[0]))
    assert window.events.acknowledge_button.isEnabled()
    top = window.events.table.item(rows.index(fall_rows[0]), 2)
    assert top.background().color().getRgb()[:3] == person_color(2)  # the person in their colour
    assert window.banner.isVisible()
    assert window.banner.label.text().startswith(alert_text("fall", 2, window.events.walls[falls[0].id]))
    assert re.match(r"Fall - person 2 - \d\d:\d\d:\d\d", window.banner.label.text())
    banner = image_array(window.banner.grab().toImage()).astype(int)
    assert np.mean(np.all(np.abs(banner - SEVERITY_COLORS[falls[0].severity]) < 8, axis=-1)) > 0.5
    # The person list shows the monitor's posture of whoever it lists.
    window._show(fall_estimates(start=0.0)[-1])
    window.refresh()
    name, posture = window.people.row_texts()[0][:2]
    assert name == "#2" and re.fullmatch(r"on floor 0:0\d", posture)
    window.grab().save(str(EVENTS_SHOT))
    # Still on the floor and nobody acknowledged: on_floor is raised after a minute, the fall escalated after two.
    t = fall[-1].timestamp
    while t < falls[0].raised_t + controller.monitor.config.alert_escalate_s + 0.5:
        t += 0.5
        controller._watch(BodyEstimate(FrameSet({}, t, 0), {}, people=[Person(2, {}, keypoints("on_floor", 1.0, 0.0))]))
    window.refresh()
    assert falls[0].severity == "critical" and len(beeps) == 2
    assert window.events.row_texts()[0][1] == "Fall (escalated)"
    assert window.banner.label.text().startswith("Fall - person 2 - ") and window.banner.label.text().endswith("(+1 more)")
    banner = image_array(window.banner.grab().toImage()).astype(int)
    assert np.mean(np.all(np.abs(banner - SEVERITY_COLORS["critical"]) < 8, axis=-1)) > 0.5
    # Acknowledge from the banner (the most severe first): the name is asked once, then remembered.
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: asked.append(a) or ("nurse Ada", True))
    qtbot.mouseClick(window.banner.button, Qt.MouseButton.LeftButton)
    window.refresh()
    assert window.events.row_texts()[0][1] == "Fall (acknowledged by nurse Ada)"
    assert window.banner.isVisible() and window.banner.label.text().startswith("On the floor - person 2 - ")
    # ... and the other from the events panel: its row selected, Acknowledge.
    on_floor = [r[1] for r in window.events.row_texts()].index("On the floor")
    window.events.table.selectRow(on_floor)
    qtbot.mouseClick(window.events.acknowledge_button, Qt.MouseButton.LeftButton)
    window.refresh()
    assert not window.banner.isVisible() and len(asked) == 1
    assert window.events.row_texts()[0][1] == "On the floor (acknowledged by nurse Ada)"
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    acknowledged = [(e["type"], e["person"], e["detail"]["by"]) for e in written if e["phase"] == "acknowledged"]
    assert acknowledged == [("fall", 2, "nurse Ada"), ("on_floor", 2, "nurse Ada")]
    # Clicking an event jumps the replay (the demo's files) to its time.
    sought: list[float] = []
    source = controller._processing.source
    assert isinstance(source, SessionReplay) and window.events.can_jump
    monkeypatch.setattr(source, "seek", sought.append)
    row = [r[1] for r in window.events.row_texts()].index("Fall")
    table = window.events.table
    cell = table.visualItemRect(table.item(row, 1)).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=cell)
    assert sought == [pytest.approx(window.events.table.item(row, 0).data(Qt.ItemDataRole.UserRole))]


def test_zone_editor_adds_a_zone_by_clicks_and_saves_it(monitored: MainWindow, qtbot, owned) -> None:
    window = monitored
    room_file = window.controller.room_file
    editor = ZoneEditor(window.cameras, (BED,), room_file, window.set_zones)
    owned(editor)
    editor.show()
    qtbot.waitExposed(editor)
    corners = [(-1.5, -1.0), (-0.5, -1.0), (-0.5, 0.0)]
    viewport = editor.plot.viewport()
    for x, y in corners:
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=editor.plot.widget_point(x, y).toPoint())
    last = editor.plot.widget_point(-1.5, 0.0).toPoint()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=last)  # a double-click: its first click,
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=last)  # then the second press (QTest sends
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=last)  # no release; pyqtgraph waits for one)
    assert editor.closed and len(editor.draft) == 4
    pixel_m = 1.0 / abs(editor.plot.widget_point(1.0, 0.0).x() - editor.plot.widget_point(0.0, 0.0).x())
    assert np.abs(np.array(editor.draft) - np.array([*corners, (-1.5, 0.0)])).max() <= 1.5 * pixel_m
    qtbot.keyClicks(editor.name_edit, "stairs")
    editor.kind_box.setCurrentText("no-go")
    editor.height_box.setValue(0.0)
    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    assert [z.name for z in editor.zones] == ["bed", "stairs"]
    editor.grab().save(str(ZONES_SHOT))
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    saved = load_config(room_file).zones
    assert [(z.name, z.kind) for z in saved] == [("bed", "bed"), ("stairs", "no-go")]
    assert np.abs(saved[1].polygon - np.array([*corners, (-1.5, 0.0)])).max() <= 1.5 * pixel_m
    # The running monitor places people in the new zone at once; the viewport draws both outlines.
    monitor = window.controller.monitor
    assert [z.name for z in monitor.config.zones] == ["bed", "stairs"]
    assert len(window.zone_lines) == 2
    marks = Landmarks.from_keypoints(keypoints("standing", -1.0, -0.5))
    monitor.update(monitor.t + 1.0, [Observation(5, marks)])
    assert monitor.states[5].zone == "stairs"
    # Delete the bed and save again.
    editor.list.setCurrentRow(0)
    qtbot.mouseClick(editor.delete_button, Qt.MouseButton.LeftButton)
    assert editor.save()
    assert [z.name for z in load_config(room_file).zones] == ["stairs"]


def test_zone_editor_needs_a_calibrated_room(qtbot, owned, tmp_path: Path) -> None:
    room_file = room_copy(tmp_path)
    editor = ZoneEditor([uncalibrated("cam1", (640, 480))], (), room_file)
    owned(editor)
    editor.show()
    qtbot.waitExposed(editor)
    assert editor.message.text() == NEEDS_CALIBRATION
    qtbot.mouseClick(editor.plot.viewport(), Qt.MouseButton.LeftButton, pos=editor.plot.widget_point(0, 0).toPoint())
    assert editor.draft == [] and not editor.save_button.isEnabled()


PATTERN = np.array([(255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 0, 255)], np.uint8)  # RGB


def pattern_image(size: tuple[int, int]) -> np.ndarray:
    """A BGR image of 16-pixel stripes in the four PATTERN colours (none of which the overlays use)."""
    w, h = size
    stripes = (np.arange(w) // 16) % len(PATTERN)
    rgb = np.broadcast_to(PATTERN[stripes][None], (h, w, 3))
    return np.ascontiguousarray(rgb[..., ::-1])


def pattern_fraction(pixels: np.ndarray, tol: int = 10) -> float:
    """The fraction of pixels within ``tol`` of a PATTERN colour."""
    near = np.abs(pixels[:, :, None, :].astype(int) - PATTERN[None, None].astype(int)).max(axis=-1) <= tol
    return float(near.any(axis=-1).mean())


def patterned(cameras, people, t: float = 75.0) -> BodyEstimate:
    frames = {c.name: Frame(c.name, pattern_image(c.image_size), t, 0) for c in cameras}
    return BodyEstimate(FrameSet(frames, t, 0), {}, people=people)


def test_mesh_only_shows_no_camera_pixels(qtbot, owned) -> None:
    cameras = room()
    feed = Feed(cameras)
    window = MainWindow(feed, "mesh only")  # type: ignore[arg-type]
    owned(window)
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    people = [person(1, -0.5, cameras), person(2, 0.5, cameras)]
    show(window, feed, patterned(cameras, people))
    views = window.grid.views.values()
    assert all(pattern_fraction(image_array(v.grab().toImage())) > 0.3 for v in views)  # the pictures are shown
    window.mesh_only_action.trigger()  # View -> Mesh only, all cameras
    show(window, feed, patterned(cameras, people, t=76.0))
    for view in views:
        assert view.mesh_only
        pixels = image_array(view.grab().toImage())
        assert pattern_fraction(pixels) == 0.0  # not one pixel of the camera picture
        bodies = [np.all(np.abs(pixels.astype(int) - person_color(i)) < 12, axis=-1).mean() for i in (1, 2)]
        assert min(bodies) > 0.0001  # the people are still drawn, in their colours
    window.grab().save(str(MESH_ONLY_SHOT))
    # One camera back to its picture from its own context menu; the others stay mesh-only.
    cam1 = window.grid.views["cam1"]
    mesh_action = cam1.privacy_menu().actions()[0]
    mesh_action.trigger()
    assert not cam1.mesh_only and window.grid.views["cam2"].mesh_only
    assert pattern_fraction(image_array(cam1.grab().toImage())) > 0.3


def test_face_blur_changes_only_the_faces(qtbot, owned) -> None:
    cameras = room()[:1]
    feed = Feed(cameras)
    window = MainWindow(feed, "blur")  # type: ignore[arg-type]
    owned(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    view = window.grid.views["cam1"]
    view.set_overlay("mesh")  # no skeleton over the face
    one = [person(1, 0.0, cameras)]
    one[0].views.clear()  # no mesh either: only the picture
    show(window, feed, patterned(cameras, one))
    sharp = image_array(view.grab().toImage()).astype(int)
    window.blur_action.trigger()
    assert view.blur_faces
    show(window, feed, patterned(cameras, one, t=76.0))
    blurred = image_array(view.grab().toImage()).astype(int)
    rect = view.target_rect()
    changed = np.abs(blurred - sharp).max(axis=-1) > 30
    changed[: max(int(rect.top()) + 1, 24)] = changed[int(rect.bottom()) - 1 :] = False  # the picture, not the caption
    scale = rect.width() / cameras[0].image_size[0]
    head = one[0].keypoints2d["cam1"].points[:5, :2]
    rows, cols = np.nonzero(changed)
    assert changed.mean() > 0.001
    # Everything that changed lies around the head (within a head's box of the head keypoints).
    ys, xs = (rows - rect.y()) / scale, (cols - rect.x()) / scale
    reach = 3 * np.ptp(head, axis=0).max() + 20
    assert np.all(np.hypot(xs - head[:, 0].mean(), ys - head[:, 1].mean()) < reach)


def test_replay_seek_goes_back_to_an_earlier_set_on_a_rising_clock() -> None:
    replay = SessionReplay([SyntheticSource("a", frames=30, fps=10), SyntheticSource("b", frames=30, fps=10)], loop=True)
    sets = [replay.next() for _ in range(40)]  # one loop and a bit
    assert [s.frames["a"].index for s in sets[29:31]] == [29, 0]
    last = sets[-1].reference_time
    replay.seek(sets[5].reference_time)  # first loop, frame 5
    again = replay.next()
    assert again.frames["a"].index == 5 and again.frames["b"].index == 5
    assert again.reference_time == pytest.approx(last + 0.1)
    replay.seek(sets[32].reference_time)  # second loop, frame 2
    assert replay.next().frames["a"].index == 2
    replay.seek(again.reference_time)  # a time delivered after the first seek: frame 5 again
    assert [replay.next().frames["a"].index for _ in range(3)] == [5, 6, 7]
    replay.close()


def test_clock_text() -> None:
    assert clock_text("2026-11-28T14:03:12.345+00:00") == "14:03:12"
    assert alert_text("fall", 2, "2026-11-28T14:03:12.345+00:00") == "Fall - person 2 - 14:03:12"
    assert alert_text("blind", None, "2026-11-28T09:00:00+01:00") == "Cannot see - 09:00:00"


def test_file_stream_to_sends_every_result_and_a_bad_address_says_so(qtbot, owned) -> None:
    """File -> Stream to...: JSON over UDP to a local socket, one datagram per result with the
    people's ids and joints; a bad address is one line in the status area."""
    import socket

    processing = open_processing(detector="fake", with_body=False)
    controller = Controller(processing, max_sets=5)
    window = MainWindow(controller, "streaming")
    owned(window)
    window.show()
    qtbot.waitExposed(window)
    assert not window.start_stream("ftp://example.org") and "expected vmc://HOST[:PORT]" in window.message
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(20)
    assert window.start_stream(f"json://127.0.0.1:{receiver.getsockname()[1]}")
    assert window.message.startswith("streaming to json://127.0.0.1")
    controller.start()
    frames = [json.loads(receiver.recv(65536)) for _ in range(5)]  # one datagram per result
    assert [f["frame"] for f in frames] == sorted(f["frame"] for f in frames)
    seen = [f for f in frames if f["people"]]  # people appear once confirmed (the third set)
    assert seen and seen[-1]["people"][0]["id"] >= 1 and len(seen[-1]["people"][0]["keypoints3d"]) == 17
    qtbot.waitUntil(lambda: controller.state is RunnerState.FINISHED, timeout=60000)
    window.stop_streaming()
    assert window.message == "streaming stopped" and not controller.streams
    receiver.close()
