"""The calibration wizard under Xvfb on recorded calibration videos (caliscope's real webcams)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.gui

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("GUI tests need a display: run them with `make test` (Xvfb)", allow_module_level=True)

from app.calibration_wizard import CalibrationWizard  # noqa: E402
from calibration.board import Board  # noqa: E402
from calibration.camera import uncalibrated  # noqa: E402
from calibration.collector import BoardCollector  # noqa: E402
from calibration.importers import read_caliscope  # noqa: E402
from calibration.io import load_calibration  # noqa: E402
from capture.replay import SessionReplay  # noqa: E402
from capture.sources import sources_from_path  # noqa: E402

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
    wizard.next()  # summary
    assert wizard.currentPage() is wizard.summary_page
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
    state = wizard.collector.cameras["cam_2"]  # type: ignore[union-attr]
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
