"""The calibration checks shared by every reader (calibration.validate), the shipped example
boards, and the warning for videos of different lengths (capture.session.open_session)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.board import load_board
from calibration.formats import read_cameras
from calibration.io import load_calibration, save_calibration
from calibration.validate import check_cameras
from capture.session import open_session
from core.camera import looking_at
from core.errors import CalibrationError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration"
BOARDS = sorted((ROOT / "assets" / "boards").glob("*.toml"))


@pytest.mark.parametrize("path", [ROOT / "assets" / "demo" / "calibration.toml", DATA / "pose2sim_Calib.qca.txt",
                                  DATA / "caliscope" / "camera_array.toml"], ids=["ours", "qualisys", "caliscope"])  # fmt: skip
def test_real_calibrations_pass_the_checks(path: Path) -> None:
    cameras = read_cameras(path)
    assert len(cameras) == 4 and all(c.calibrated for c in cameras)
    check_cameras(str(path), cameras)


def test_intrinsics_only_file_keeps_its_camera_at_the_origin(tmp_path: Path) -> None:
    """An intrinsics file (kind = "intrinsics") holds cameras at the origin by design: it loads."""
    a, b = looking_at("a", (3.0, 0.0, 2.0)), looking_at("b", (0.0, 3.0, 2.0))
    at_origin = [type(a)(c.name, c.image_size, c.K, c.dist, np.eye(3), np.zeros(3)) for c in (a, b)]
    save_calibration(tmp_path / "i.toml", at_origin, {"kind": "intrinsics"})
    assert len(load_calibration(tmp_path / "i.toml")[0]) == 2
    save_calibration(tmp_path / "room.toml", at_origin, {"kind": "extrinsics"})
    with pytest.raises(CalibrationError, match=r"room.toml: all 2 cameras are at the same point"):
        load_calibration(tmp_path / "room.toml")


def test_two_cameras_at_one_point_are_named(tmp_path: Path) -> None:
    cams = [looking_at(n, eye) for n, eye in (("a", (3.0, 0.0, 2.0)), ("b", (0.0, 3.0, 2.0)), ("c", (0.0, 3.0, 2.0)))]
    save_calibration(tmp_path / "room.toml", cams)
    with pytest.raises(CalibrationError, match=r"cameras 'b' and 'c' are at the same point"):
        load_calibration(tmp_path / "room.toml")


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
def test_example_boards_load_and_print_on_a4(path: Path, tmp_path: Path) -> None:
    from calibration.__main__ import write_board

    board = load_board(path)
    info = write_board(board, tmp_path / "board.pdf")
    short, long = sorted([float(info["width_mm"]), float(info["height_mm"])])
    assert short <= 210 and long <= 297, info  # A4
    picture = board.image(60)
    assert board.detect(cv2.copyMakeBorder(picture, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)) is not None


def test_example_chessboard_is_the_one_the_readme_names() -> None:
    board = load_board(ROOT / "assets" / "boards" / "chessboard_9x6.toml")
    assert (board.kind, board.columns, board.rows, board.square) == ("chessboard", 9, 6, 0.025)
    assert "assets/boards/chessboard_9x6.toml" in (ROOT / "README.md").read_text()


def write_video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 5 % 255, np.uint8))
    writer.release()


def test_videos_of_different_lengths_are_named_with_their_frame_counts(tmp_path: Path, caplog) -> None:
    for name, frames in (("cam_1", 30), ("cam_2", 12), ("cam_10", 30)):
        write_video(tmp_path / f"{name}.mp4", frames)
    with caplog.at_level(logging.WARNING, logger="capture.session"):
        session = open_session(tmp_path)
    session.replay.close()
    warnings = [r.getMessage() for r in caplog.records if "differ in length" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert str(tmp_path) in warnings[0] and "cam_1 30, cam_2 12, cam_10 30 frames" in warnings[0]
    assert "after 12 frames" in warnings[0]


def test_videos_a_few_frames_apart_give_no_warning(tmp_path: Path, caplog) -> None:
    for name, frames in (("a", 20), ("b", 18)):
        write_video(tmp_path / f"{name}.mp4", frames)
    with caplog.at_level(logging.WARNING, logger="capture.session"):
        session = open_session(tmp_path)
    session.replay.close()
    assert "differ in length" not in caplog.text
