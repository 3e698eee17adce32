"""Multi-camera extrinsics on caliscope's real 4-webcam ChArUco recording, the camera graph check,
the floor, and the importers (Qualisys, caliscope)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.board import Board
from calibration.extrinsics import Intrinsics, calibrate_extrinsics, floor_from_board, floor_from_points, transform_world
from calibration.formats import read_cameras
from calibration.importers import read_caliscope, read_qualisys
from calibration.io import load_calibration
from core.camera import Camera, looking_at
from core.errors import CalibrationError
from core.geometry import rodrigues_to_matrix

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration"
CALISCOPE = DATA / "caliscope"
BOARD = Board("charuco", 4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True)


@pytest.fixture(scope="module")
def reference() -> dict[str, Camera]:
    return {c.name: c for c in read_caliscope(CALISCOPE / "camera_array.toml")}


@pytest.fixture(scope="module")
def detections() -> dict[str, list]:
    frames = sorted(p.name for p in (CALISCOPE / "cam_0").glob("*.jpg"))
    return {f"cam_{c}": [BOARD.detect(cv2.imread(str(CALISCOPE / f"cam_{c}" / f))) for f in frames] for c in range(4)}


def intrinsics_of(cameras: dict[str, Camera]) -> dict[str, Intrinsics]:
    return {n: Intrinsics(c.K, c.dist, c.image_size) for n, c in cameras.items()}


def similarity_residuals(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Distances after the best similarity transform (Umeyama) of ``ours`` onto ``theirs``."""
    mu_a, mu_b = ours.mean(axis=0), theirs.mean(axis=0)
    a, b = ours - mu_a, theirs - mu_b
    u, s, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    R = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / (a**2).sum()
    return np.linalg.norm(scale * a @ R.T + mu_b - theirs, axis=1)


@pytest.mark.slow
def test_four_webcams_match_caliscope_within_5_cm(reference: dict[str, Camera], detections: dict[str, list]) -> None:
    result = calibrate_extrinsics(BOARD, detections, intrinsics_of(reference))
    names = [c.name for c in result.cameras]
    assert names == ["cam_0", "cam_1", "cam_2", "cam_3"] and not result.skipped  # the hard cam 1 too
    ours = np.array([c.center for c in result.cameras])
    theirs = np.array([reference[n].center for n in names])
    assert similarity_residuals(ours, theirs).max() < 0.05
    assert max(result.errors_px.values()) < 2.0  # median reprojection error per camera
    assert abs(result.square_m / BOARD.square - 1) < 0.02  # corners triangulated 54 mm apart
    assert result.sightings["cam_1"] >= 6 and result.shared["cam_0-cam_2"] >= 14


def test_unlinked_camera_is_named(reference: dict[str, Camera], detections: dict[str, list]) -> None:
    n = len(detections["cam_0"])
    apart = {name: (d + [None] * n if name != "cam_3" else [None] * n + d) for name, d in detections.items()}
    with pytest.raises(
        CalibrationError, match=r"not linked to the others: cam_3 \(board seen in 1[0-9] frames but at most 0 together"
    ):
        calibrate_extrinsics(BOARD, apart, intrinsics_of(reference))
    result = calibrate_extrinsics(BOARD, apart, intrinsics_of(reference), skip_unlinked=True)
    assert [c.name for c in result.cameras] == ["cam_0", "cam_1", "cam_2"] and "cam_3" in result.skipped


def look_at(name: str, eye: tuple[float, float, float]) -> Camera:
    return looking_at(name, eye, (0.0, 0.0, 0.8), focal=500.0)


ROOM = [look_at("a", (3.0, 0.5, 2.5)), look_at("b", (-2.0, 2.5, 2.2)), look_at("c", (0.3, -3.0, 1.5))]


def test_floor_from_board_restores_the_room() -> None:
    """Move a known room into an arbitrary frame; the board lying face up at the origin brings it back."""
    R = rodrigues_to_matrix(np.array([0.4, -1.1, 2.0]))
    t = np.array([0.5, -2.0, 3.0])
    moved = transform_world(ROOM, R, t)
    board_R = R @ np.diag([1.0, -1.0, -1.0])  # face up: x along X, z into the floor
    restored = floor_from_board(moved, board_R, t)
    for before, after in zip(ROOM, restored, strict=True):
        assert np.allclose(after.center, before.center, atol=1e-9)
        assert np.allclose(after.R, before.R, atol=1e-9)
    upside_down = R @ np.diag([1.0, 1.0, 1.0])  # the board's back toward the cameras
    with pytest.raises(CalibrationError, match="below the floor"):
        floor_from_board(moved, upside_down, t)


def test_floor_from_three_points() -> None:
    R = rodrigues_to_matrix(np.array([1.0, 0.2, -0.3]))
    t = np.array([1.0, 1.0, -1.0])
    moved = transform_world(ROOM, R, t)
    floor = (np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.5, 1.5, 0.0]]) @ R.T) + t
    restored = floor_from_points(moved, floor)
    for before, after in zip(ROOM, restored, strict=True):
        assert np.allclose(after.center, before.center, atol=1e-9)
    with pytest.raises(CalibrationError, match="on one line"):
        floor_from_points(moved, np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]))


def test_qualisys_import_matches_the_demo_calibration() -> None:
    qualisys = read_qualisys(DATA / "pose2sim_Calib.qca.txt")
    demo = {c.name: c for c in load_calibration(ROOT / "assets" / "demo" / "calibration.toml")[0]}
    assert [c.name for c in qualisys] == ["cam01", "cam02", "cam03", "cam04"]
    for cam in qualisys:
        ref = demo[cam.name]
        assert np.allclose(cam.R, ref.R, atol=1e-6) and np.allclose(cam.t, ref.t, atol=1e-6)
        assert np.allclose(cam.K, ref.K, atol=1e-3)  # same focal lengths and principal point
        assert cam.image_size == (1088, 1920)
    assert np.allclose(qualisys[0].center, [1.4602, -1.9092, 1.8965], atol=1e-4)  # Z up, metres


def test_caliscope_import_and_format_detection() -> None:
    cams = read_cameras(CALISCOPE / "camera_array.toml")
    assert [c.name for c in cams] == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert cams[0].K[0, 0] == pytest.approx(903.550124089999) and cams[0].image_size == (1280, 720)
    assert np.allclose(cams[0].R @ cams[0].R.T, np.eye(3), atol=1e-6)
    assert read_cameras(DATA / "pose2sim_Calib.qca.txt")[0].name == "cam01"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calibration", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_extrinsics_from_videos_and_timestamps_then_report(tmp_path: Path, reference: dict[str, Camera]) -> None:
    """Videos made from the test frames, a caliscope-style timestamps CSV (frame indices that are
    not video positions), the CLI, and the report's top view. ``--floor-frame`` names an instant
    without the board (a blank last frame): the error lists the usable sync indices and the
    calibration is still saved, without the floor."""
    rows, videos = [], []
    for c in range(4):
        files = sorted((CALISCOPE / f"cam_{c}").glob("*.jpg"))
        video = tmp_path / f"cam_{c}.mp4"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 6, (1280, 720))
        for f in files:
            writer.write(cv2.imread(str(f)))
            rows.append((int(f.stem.split("_")[1]), c, int(f.stem.split("_")[1])))
        writer.write(np.zeros((720, 1280, 3), np.uint8))
        rows.append((999, c, 999))
        writer.release()
        videos.append(str(video))
    with (tmp_path / "sync.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("sync_index", "cam_id", "frame_index"), *rows])
    board = tmp_path / "board.toml"
    board.write_text('[board]\nkind = "charuco"\ncolumns = 4\nrows = 5\nsquare = 0.054\nmarker = 0.0405\n'
                     'dictionary = "DICT_4X4_1000"\ninverted = true\n')  # fmt: skip
    out = tmp_path / "room.toml"
    intrinsics = str(CALISCOPE / "camera_array.toml")
    result = run_cli("extrinsics", "--board", str(board), "--videos", *videos, "--intrinsics", intrinsics,
                     "--timestamps", str(tmp_path / "sync.csv"), "--floor-frame", "999", "--out", str(out))  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--floor-frame 999" in errors[0] and "WITHOUT the floor" in errors[0], result.stderr
    seen = sorted({r[0] for r in rows if r[0] != 999})
    usable = errors[0].split("usable: ")[1].split(";")[0]
    assert usable.startswith(str(seen[0])) and str(seen[-1]) in usable and "999" not in usable, errors[0]
    cameras, meta = load_calibration(out)
    assert meta["kind"] == "extrinsics" and meta["world"] == "first camera" and meta["rms_px"] < 3.0
    assert set(meta["errors_px"]) == {"cam_0", "cam_1", "cam_2", "cam_3"}
    assert [c.name for c in cameras] == ["cam_0", "cam_1", "cam_2", "cam_3"]
    theirs = np.array([reference[c.name].center for c in cameras])
    assert similarity_residuals(np.array([c.center for c in cameras]), theirs).max() < 0.05
    png = tmp_path / "top.png"
    report = run_cli("report", str(out), "--png", str(png))
    assert report.returncode == 0, report.stderr
    shown = json.loads(report.stdout)
    assert set(shown["positions_m"]) == {"cam_0", "cam_1", "cam_2", "cam_3"} and shown["board_positions"] >= 14
    centres = np.array(meta["board_positions"])  # the board was held within about 1.5 m of the cameras
    cams_mean = np.mean([c.center for c in cameras], axis=0)
    assert np.linalg.norm(centres - cams_mean, axis=1).max() < 1.5
    picture = cv2.imread(str(png))
    assert picture is not None and picture.shape[0] > 300 and picture.std() > 10
    missing = run_cli("extrinsics", "--board", str(board), "--videos", *videos[:2], "--intrinsics", str(tmp_path / "none.toml"),
                      "--out", str(out))  # fmt: skip
    assert missing.returncode == 2 and "none.toml: not found" in missing.stderr
