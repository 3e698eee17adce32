"""The real main window under Xvfb: camera views show frames, the 3D viewport is drawn."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("GUI tests need a display: run them with `make test` (Xvfb)", allow_module_level=True)

from PyQt6.QtGui import QImage  # noqa: E402

from app.launch import build_window  # noqa: E402
from app.people import person_color  # noqa: E402
from app.viewport import SKELETON_COLOR  # noqa: E402
from tests.apprun import run_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def image_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def colour_fraction(pixels: np.ndarray, rgb: tuple[float, float, float], tol: int = 40) -> float:
    target = np.array(rgb[:3]) * 255
    return float(np.mean(np.all(np.abs(pixels.astype(int) - target) < tol, axis=-1)))


@pytest.fixture
def window(qtbot):
    win = build_window(detector="fake", frames=8, realtime=False, loop=False)
    qtbot.addWidget(win)
    win.resize(1400, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def test_window_shows_frames_skeletons_and_viewport(window, qtbot) -> None:
    qtbot.waitUntil(lambda: window.controller.processed >= 8 and window.controller.latest() is window.shown, timeout=30000)
    assert set(window.grid.views) == {"cam01", "cam02", "cam03", "cam04"}
    view = window.grid.views["cam03"]
    pixels = image_array(view.grab().toImage())
    rect = view.target_rect()
    assert rect.height() == pytest.approx(view.height(), abs=1)  # portrait frame: height-limited, aspect kept
    inside = pixels[int(rect.top()) + 5 : int(rect.bottom()) - 5, int(rect.left()) + 5 : int(rect.right()) - 5]
    assert inside.std() > 20  # a real camera image, not a blank widget
    # The fake detector's skeleton is drawn on the image in the left/right colours.
    assert colour_fraction(inside, (0, 170 / 255, 1.0)) > 0.0005
    viewport = image_array(window.viewport.grabFramebuffer())
    background = np.array([30, 32, 38])
    drawn = np.any(np.abs(viewport.astype(int) - background) > 25, axis=-1).mean()
    assert drawn > 0.02  # floor grid, camera frusta, skeleton
    people = window.shown.people  # a tracked person's skeleton is drawn in their colour (app.people)
    skeleton = tuple(c / 255 for c in person_color(people[0].id)) if people else SKELETON_COLOR[:3]
    assert colour_fraction(viewport, skeleton) > 0.0002
    assert colour_fraction(viewport, (0.35, 0.8, 1.0)) > 0.0002  # camera frusta
    assert "sets" in window.status.text() and "ms" in window.status.text()


def test_screenshot_mode_writes_the_whole_window(tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    result = run_app("--screenshot", str(out), "--frames", "3", timeout=300)
    assert result.returncode == 0, result.stderr
    shot = QImage(str(out))
    assert shot.width() >= 1200 and shot.height() >= 700
    pixels = image_array(shot)
    left, right = pixels[:, : pixels.shape[1] // 2], pixels[:, pixels.shape[1] * 2 // 3 :]
    assert left.std() > 30
    assert colour_fraction(right, (0.35, 0.8, 1.0)) > 0.0002  # cameras in the 3D viewport


def test_mesh_overlay_toggle_and_mesh_in_viewport(window, qtbot) -> None:
    """HeatFormer's body is drawn over the camera images (Mesh / Both) and in the 3D viewport."""
    qtbot.waitUntil(lambda: window.controller.processed >= 8 and window.controller.latest() is window.shown, timeout=60000)
    view = window.grid.views["cam03"]
    assert window.shown.fused is not None and view.shows_mesh
    grabs = {}
    for mode in ("skeleton", "mesh", "both"):
        window.overlay_actions[mode].trigger()  # the toolbar buttons
        assert view.overlay == mode
        grabs[mode] = image_array(view.grab().toImage()).astype(int)
    skeleton_blue = (0, 170 / 255, 1.0)
    assert colour_fraction(grabs["skeleton"], skeleton_blue) > 0.0005
    assert colour_fraction(grabs["mesh"], skeleton_blue) < 0.0001  # mesh only: no skeleton
    assert colour_fraction(grabs["both"], skeleton_blue) > 0.0005
    # Where the mesh is drawn the image takes its light green tint (semi-transparent: not replaced).
    bones = np.abs(grabs["both"] - grabs["mesh"]).sum(axis=-1) > 30
    changed = (np.abs(grabs["mesh"] - grabs["skeleton"]).sum(axis=-1) > 30) & ~bones
    assert changed.mean() > 0.01
    tint = lambda px: (px[..., 1] - px[..., 0] - px[..., 2] / 2)[changed].mean()  # noqa: E731
    assert tint(grabs["mesh"]) > tint(grabs["skeleton"]) + 15
    # The viewport draws the body mesh: hiding it removes a warm-coloured figure (one body) or one in
    # the light green of the first person (app.people).
    with_mesh = image_array(window.viewport.grabFramebuffer()).astype(int)
    for mesh in [window.viewport.mesh, *(items.mesh for items in window.viewport.people_items.values())]:
        mesh.setVisible(False)
    without = image_array(window.viewport.grabFramebuffer()).astype(int)
    body = np.abs(with_mesh - without).sum(axis=-1) > 30
    assert body.mean() > 0.0005
    r, g, b = (with_mesh[body][:, i].mean() for i in range(3))
    assert (g >= r >= b and g > 60) if window.shown.people else (r >= g >= b and r > 60)
    assert "body" in window.status.text()


def test_loading_a_calibration_switches_the_running_pipeline(qtbot, tmp_path: Path) -> None:
    """Start uncalibrated (a body per view), load the room's calibration while running:
    triangulation, the fused world body and the camera frusta follow without a restart."""
    from app.controller import Controller
    from app.main_window import MainWindow
    from app.processing import Processing
    from calibration.io import load_calibration, save_calibration
    from capture.session import open_session
    from engine.detect.fake import FakeDetector
    from engine.heatformer.live import LiveBody
    from engine.heatformer.runtime import load_heatformer
    from engine.pipeline import Pipeline

    demo_file = ROOT / "assets" / "demo" / "calibration.toml"
    demo_cameras = load_calibration(demo_file)[0]
    session = open_session(None, None, uncalibrated_mode=True, loop=True)
    body = LiveBody(load_heatformer(), session.cameras, calibrated=False)
    pipeline = Pipeline(FakeDetector(demo_cameras), session.cameras, body=body)
    controller = Controller(Processing(session.replay, session.cameras, pipeline))
    window = MainWindow(controller, "Room capture - demo (uncalibrated)")
    qtbot.addWidget(window)
    window.show()
    controller.start()
    try:
        qtbot.waitUntil(lambda: window.shown is not None and window.shown.body is not None, timeout=60000)
        assert window.shown.keypoints3d is None and window.shown.fused is None and not window.viewport.camera_items
        assert "uncalibrated" in window.status.text()
        three = tmp_path / "three.toml"
        save_calibration(three, demo_cameras[:3])
        assert not window.load_calibration(str(three))
        assert "has 3 camera(s) but the source has 4" in window.status.text()
        assert window.load_calibration(str(demo_file))
        seen = controller.processed
        qtbot.waitUntil(lambda: controller.processed > seen + 2 and window.shown is not None and window.shown.fused is not None,
                        timeout=60000)  # fmt: skip
        assert window.shown.keypoints3d is not None and np.isfinite(window.shown.keypoints3d[:, :3]).all()
        assert len(window.viewport.camera_items) == 4 and "(calibrated)" in window.windowTitle()
        assert "calibration loaded" in window.status.text()
    finally:
        window.shutdown()


def test_record_button_records_a_session_that_reads_back(window, qtbot, tmp_path: Path) -> None:
    from capture.recorded import read_metadata, recorded_sources
    from recording.reader import load_results

    qtbot.waitUntil(lambda: window.controller.processed >= 1, timeout=30000)
    folder = tmp_path / "session"
    assert window.start_recording(folder)
    assert window.record_action.isChecked()
    c = window.controller
    qtbot.waitUntil(lambda: c.recorder is None or c.recorder.recorded >= 3 or c.state.value == "finished", timeout=60000)
    qtbot.wait(200)
    window.stop_recording()
    assert not window.record_action.isChecked() and "recorded" in window.status_text()
    meta = read_metadata(folder)
    assert meta["sets"] >= 1 and meta["stop_reason"] == "stopped by the user"
    sources = recorded_sources(folder)
    assert [s.name for s in sources] == ["cam01", "cam02", "cam03", "cam04"] and sources[0].frame_count == meta["sets"]
    assert len(load_results(folder)["set_index"]) == meta["sets"]


def test_room_dialog_tests_cameras_and_saves(qtbot, tmp_path: Path) -> None:
    from app.room_dialog import RoomDialog
    from capture.room import CameraEntry, Room, load_room

    video = str(ROOT / "assets" / "demo" / "videos" / "cam02.mp4")
    dialog = RoomDialog(Room("Lab", [CameraEntry("door", video, (1080, 1920), 60.0)]))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.table.selectRow(0)
    assert dialog.test_selected().startswith("ok: 1080x1920")
    dialog.add_row(CameraEntry("hall", "http://admin:hunter2@127.0.0.1:9/x.mjpg", (640, 480), 15.0))
    dialog.table.selectRow(1)
    result = dialog.test_selected()
    assert result.startswith("cannot open http://admin:***@127.0.0.1:9/x.mjpg") and "hunter2" not in dialog.message.text()
    dialog.table.item(1, 2).setText("wide")
    assert not dialog.save(tmp_path / "room.toml") and "width, height and fps must be numbers" in dialog.message.text()
    dialog.table.item(1, 2).setText("640")
    assert dialog.save(tmp_path / "room.toml")
    room = load_room(tmp_path / "room.toml")
    assert [c.name for c in room.cameras] == ["door", "hall"] and room.cameras[1].resolution == (640, 480)


def test_health_row_shows_a_disconnected_camera(qtbot, tmp_path: Path) -> None:
    from capture.room import CameraEntry, Room, save_room

    video = str(ROOT / "assets" / "demo" / "videos" / "cam01.mp4")
    dead = CameraEntry("hall", "http://admin:pw@127.0.0.1:9/x.mjpg", (1080, 1920), 30.0)
    save_room(tmp_path / "room.toml", Room("Lab", [CameraEntry("door", video, (1080, 1920), 60.0), dead]))
    win = build_window(detector="fake", room=tmp_path / "room.toml", with_body=False)
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.controller.processed >= 3 and "reconnecting" in win.health.text(), timeout=30000)
        qtbot.wait(300)
        text = win.health.text()
        assert "<b>door</b> live" in text and "<b>hall</b> reconnecting" in text and "pw" not in text
        assert win.grid.views["hall"]._note.startswith("no picture: reconnecting")
        assert "admin:***@" in win.health.labels["hall"].toolTip() and ":pw@" not in win.health.labels["hall"].toolTip()
    finally:
        win.shutdown()


def test_warnings_while_opening_are_shown_in_the_status_area(qtbot, tmp_path: Path) -> None:
    """A calibration made for 1088 px wide images on 1080 px wide videos (as in the Pose2Sim
    files): the principal point is adjusted with a warning, and the window shows that warning."""
    text = (ROOT / "assets" / "demo" / "calibration.toml").read_text()
    calibration = tmp_path / "calibration.toml"
    calibration.write_text(text.replace("size = [1080, 1920]", "size = [1088, 1920]"))
    win = build_window(calibration=calibration, detector="fake", frames=2, realtime=False, loop=False, with_body=False)
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.notice.text() != "", timeout=5000)
        assert win.notice.text().startswith("⚠") and "(+1 more)" in win.notice.text()
        tip = win.notice.toolTip()
        assert "cam01" in tip and "cam02" in tip and "1088x1920" in tip and "principal point" in tip
    finally:
        win.shutdown()
