"""Boards and per-camera intrinsics on real images with published or independent references."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.board import Board, Detection, load_board, save_board
from calibration.intrinsics import calibrate_intrinsics, coverage, detect_images, image_files
from calibration.io import load_calibration
from core.errors import CalibrationError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration"
OPENCV_LEFT = Board("chessboard", 9, 6, 1.0)
POSE2SIM = Board("chessboard", 4, 7, 0.06)


def test_opencv_left_camera_matches_the_published_intrinsics() -> None:
    paths = image_files(DATA / "opencv_left")
    detections, size = detect_images(OPENCV_LEFT, paths)
    assert size == (640, 480) and all(d is not None for d in detections)
    result = calibrate_intrinsics(OPENCV_LEFT, detections, size, [p.name for p in paths])
    fx, fy, cx, cy = result.K[0, 0], result.K[1, 1], result.K[0, 2], result.K[1, 2]
    assert abs(fx / 534.07 - 1) < 0.01 and abs(fy / 534.12 - 1) < 0.01, (fx, fy)
    assert np.hypot(cx - 341.5, cy - 233.0) < 4.0, (cx, cy)
    assert result.rms < 0.5
    assert -0.35 < result.dist[0] < -0.2  # strong barrel distortion (published k1 = -0.293)
    assert np.nanmax(result.per_image_error) < 0.5 and result.used.all()


@pytest.mark.slow
@pytest.mark.parametrize("camera", ["cam01", "cam02", "cam03", "cam04"])
def test_pose2sim_checkerboards_match_the_qualisys_focal_length(camera: str) -> None:
    reference = {c.name: c for c in load_calibration(ROOT / "assets" / "demo" / "calibration.toml")[0]}[camera]
    paths = image_files(DATA / f"pose2sim_{camera}")
    detections, size = detect_images(POSE2SIM, paths)
    result = calibrate_intrinsics(POSE2SIM, detections, size, [p.name for p in paths])
    assert reference.K is not None
    for axis in (0, 1):
        assert abs(result.K[axis, axis] / reference.K[axis, axis] - 1) < 0.02, (camera, result.K[axis, axis])
    assert result.rms < 0.5 and result.used.sum() >= 5


@pytest.mark.slow
def test_wrong_board_says_in_how_many_images_it_was_not_found() -> None:
    paths = image_files(DATA / "opencv_left")
    wrong = Board("chessboard", 7, 7, 1.0)
    detections, size = detect_images(wrong, paths)
    with pytest.raises(CalibrationError, match=r"board not found in 13 of 13 images"):
        calibrate_intrinsics(wrong, detections, size)


def test_outlier_image_is_rejected() -> None:
    """A detection with its corners shuffled (a bad frame) is dropped; the rest still calibrate."""
    paths = image_files(DATA / "opencv_left")
    detections, size = detect_images(OPENCV_LEFT, paths)
    bad = detections[3]
    assert bad is not None
    rng = np.random.default_rng(0)
    detections[3] = Detection(bad.corners + rng.normal(0, 6.0, bad.corners.shape), bad.ids)
    result = calibrate_intrinsics(OPENCV_LEFT, detections, size, [p.name for p in paths])
    assert result.rejected == [paths[3].name]
    assert result.per_image_error[3] > 3.0 and result.rms < 0.5
    assert abs(result.K[0, 0] / 534.07 - 1) < 0.01


@pytest.mark.parametrize("inverted", [False, True])
def test_charuco_corners_found_where_a_known_homography_puts_them(inverted: bool) -> None:
    board = Board("charuco", 5, 7, 0.04, 0.03, "DICT_4X4_50", inverted=inverted)
    flat = board.image(pixels_per_square=60, margin_squares=0.5)
    H = np.array([[0.9, 0.12, 80.0], [-0.08, 0.85, 60.0], [0.0002, 0.0001, 1.0]])
    picture = cv2.warpPerspective(flat, H, (700, 700), borderValue=255)
    found = board.detect(picture)
    assert found is not None and len(found) == 4 * 6
    # Where each corner must be: board metres -> flat image pixels -> through H.
    margin, per_metre = 30, 60 / board.square
    flat_px = board.object_points()[found.ids, :2] * per_metre + margin
    expected = cv2.perspectiveTransform(flat_px.reshape(-1, 1, 2), H).reshape(-1, 2)
    assert np.abs(found.corners - expected).max() < 0.6
    if inverted:  # white-on-black markers need the inverted flag (which also accepts normal ones)
        assert Board("charuco", 5, 7, 0.04, 0.03, "DICT_4X4_50").detect(picture) is None


def test_chessboard_corners_match_a_rendered_board() -> None:
    board = Board("chessboard", 6, 4, 0.03)
    flat = board.image(pixels_per_square=50, margin_squares=1.0)
    found = board.detect(cv2.cvtColor(flat, cv2.COLOR_GRAY2BGR))
    assert found is not None
    expected = board.object_points()[:, :2] / board.square * 50 + 50 + 50 - 0.5  # corners between pixels
    assert np.abs(found.corners - expected).max() < 0.3


def test_coverage_grid_on_known_hulls() -> None:
    left_half = Detection(np.array([[0.0, 0.0], [319.0, 0.0], [319.0, 479.0], [0.0, 479.0]]), np.arange(4))
    grid = coverage([left_half], (640, 480), cells=(4, 2))
    assert grid.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


def test_board_file_round_trip_and_errors(tmp_path: Path) -> None:
    board = Board("charuco", 4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True)
    save_board(tmp_path / "b.toml", board)
    assert load_board(tmp_path / "b.toml") == board
    (tmp_path / "bad.toml").write_text('[board]\nkind = "charuco"\ncolumns = 4\nrows = 5\n')
    with pytest.raises(CalibrationError, match=r"bad.toml: \[board\] is missing field 'square'"):
        load_board(tmp_path / "bad.toml")
    (tmp_path / "dict.toml").write_text(
        '[board]\nkind = "charuco"\ncolumns = 4\nrows = 5\nsquare = 0.05\nmarker = 0.04\ndictionary = "DICT_9X9"\n'
    )
    with pytest.raises(CalibrationError, match=r"dict.toml: field dictionary: unknown ArUco dictionary 'DICT_9X9'"):
        load_board(tmp_path / "dict.toml")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calibration", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_intrinsics_writes_a_calibration_file(tmp_path: Path) -> None:
    save_board(tmp_path / "board.toml", OPENCV_LEFT)
    out = tmp_path / "left.toml"
    result = run_cli("intrinsics", "--board", str(tmp_path / "board.toml"), "--images", str(DATA / "opencv_left"),
                     "--pattern", "left*.jpg", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["used"] == 13 and summary["rms_px"] < 0.5
    assert "warning" not in result.stderr and summary["covered_fraction"] > 0.4  # 13 views over 44 % of the image
    cameras, meta = load_calibration(out)
    assert meta["kind"] == "intrinsics" and cameras[0].image_size == (640, 480)
    assert cameras[0].K is not None and abs(cameras[0].K[0, 0] / 534.07 - 1) < 0.01
    bad = run_cli("intrinsics", "--board", str(tmp_path / "nope.toml"), "--images", str(DATA / "opencv_left"), "--out", str(out))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: board file")


def test_cli_video_intrinsics_from_few_central_views_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """caliscope's cam_2 video shows the board near the centre only: every 5th frame gives 7 views
    covering 3 % of the image. The calibration is written, with a warning saying so."""
    from calibration.__main__ import main

    save_board(tmp_path / "board.toml", Board("charuco", 4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True))
    video = DATA / "caliscope" / "intrinsic" / "cam_2.mp4"
    code = main(["intrinsics", "--board", str(tmp_path / "board.toml"), "--video", str(video), "--every", "5",
                 "--out", str(tmp_path / "cam_2.toml")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and (tmp_path / "cam_2.toml").is_file()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cam_2.mp4" in warnings[0] and "7 board view(s) covering 3 % of the image" in warnings[0]
    summary = json.loads(out)
    assert summary["used"] == 7 and summary["covered_fraction"] < 0.05 and "warning" in summary


@pytest.mark.slow
def test_cli_board_pdf_is_true_scale(tmp_path: Path) -> None:
    save_board(tmp_path / "board.toml", Board("chessboard", 9, 6, 0.025))
    out = tmp_path / "board.pdf"
    result = run_cli("board", "--config", str(tmp_path / "board.toml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", out.read_bytes())
    assert box is not None
    width_mm, height_mm = (float(v) / 72 * 25.4 for v in box.groups())
    assert width_mm == pytest.approx((10 + 1) * 25, abs=0.5)  # 10 squares + half a square each side
    assert height_mm == pytest.approx((7 + 1) * 25, abs=0.5)


@pytest.mark.slow
@pytest.mark.parametrize("camera", [0, 2, 3])
def test_caliscope_charuco_videos_match_its_focal_lengths(camera: int) -> None:
    """Inverted ChArUco board, real webcams; cam 1 (glare, small board) is the extrinsics test's case."""
    from calibration.importers import read_caliscope
    from calibration.intrinsics import detect_video

    board = Board("charuco", 4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True)
    reference = {c.name: c for c in read_caliscope(DATA / "caliscope" / "camera_array.toml")}[f"cam_{camera}"]
    detections, size, names = detect_video(board, DATA / "caliscope" / "intrinsic" / f"cam_{camera}.mp4", every=1)
    result = calibrate_intrinsics(board, detections, size, names)
    assert reference.K is not None and size == (1280, 720)
    for axis in (0, 1):
        assert abs(result.K[axis, axis] / reference.K[axis, axis] - 1) < 0.03, (camera, result.K[axis, axis])
    assert result.rms < 0.5 and result.used.sum() >= 20
