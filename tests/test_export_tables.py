"""Session-wide exports (recording.exports.tables, recording.exports.plot) of two synthetic people
whose joints are known: tables read back with the csv module and pyarrow, the plot read as pixels."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pyarrow.parquet as pq
import pytest

from recording.exports import ExportError, plot, tables
from recording.motion import Motion

FPS = 30.0
FALL_T = 2.0  # person 1 falls here: the head goes from 1.7 m to 0.3 m


def person(pid: int, frames: int, keypoints: bool = True) -> Motion:
    """Person ``pid`` walks along +x at 1 m/s at y = pid; joint j at height 0.05 j + 0.4 (head 1.15 m),
    person 1's joints drop by 1 m after FALL_T; frame 5 invalid; keypoint k at z = 0.1 k, conf 0.9."""
    times = np.arange(frames) / FPS
    joints = np.zeros((frames, 24, 3))
    joints[..., 0] = times[:, None]
    joints[..., 1] = pid
    joints[..., 2] = 0.4 + 0.05 * np.arange(24)
    if pid == 1:
        joints[times > FALL_T, :, 2] -= 0.3
    k3d = np.zeros((frames, 17, 4))
    k3d[..., 2] = 0.1 * np.arange(17)
    k3d[..., 3] = 0.9
    valid = np.ones(frames, bool)
    valid[5] = False
    orient = np.tile([0.1 * pid, 0.2, 0.3], (frames, 1))
    pose = np.full((frames, 23, 3), 0.01 * pid)
    transl = joints[:, 0].copy()
    for a in (orient, pose, transl, joints, k3d):
        a[~valid] = np.nan
    betas = np.arange(10) * 0.1 * pid
    return Motion(pid, times, valid, orient, pose, transl, betas, joints, k3d if keypoints else None)


EVENTS = [
    {"t": FALL_T, "type": "fall", "phase": "raised", "person": 1, "severity": "alarm"},
    {"t": 1.0, "type": "people_count", "phase": "raised", "person": None, "severity": "info"},
    {"t": 99.0, "type": "fall", "phase": "resolved", "person": 1, "severity": "info"},  # after the end: on no row
]


def motions() -> list[Motion]:
    return [person(1, 90), person(2, 60, keypoints=False)]


def check_table(rows: list[dict[str, object]], number) -> None:
    """The rows of the table of :func:`motions` (``number`` turns a cell into a float, NaN when missing)."""
    assert len(rows) == 150
    assert [int(number(r["person"])) for r in rows] == [1] * 90 + [2] * 60
    assert [int(number(r["frame"])) for r in rows] == list(range(90)) + list(range(60))
    r = rows[90 + 30]  # person 2, frame 30
    assert number(r["time"]) == pytest.approx(1.0) and number(r["valid"]) == 1
    assert [number(r[f"smpl_head_{a}"]) for a in "xyz"] == pytest.approx([1.0, 2.0, 1.15], abs=1e-6)
    assert math.isnan(number(r["coco_nose_z"]))  # person 2 has no keypoints
    assert number(r["betas_3"]) == pytest.approx(0.6) and number(r["body_pose_right_hand_2"]) == pytest.approx(0.02)
    r = rows[80]  # person 1 after the fall
    assert number(r["smpl_head_z"]) == pytest.approx(0.85) and number(r["coco_right_ankle_z"]) == pytest.approx(1.6)
    assert number(r["coco_nose_conf"]) == pytest.approx(0.9) and number(r["global_orient_0"]) == pytest.approx(0.1)
    assert number(rows[5]["valid"]) == 0 and math.isnan(number(rows[5]["smpl_pelvis_x"]))
    assert math.isnan(number(rows[5]["betas_0"]))
    assert rows[60]["events"] == "fall:raised" and rows[30]["events"] == rows[120]["events"] == "people_count:raised"
    assert sum(bool(r["events"]) for r in rows) == 3


def test_csv_reads_back_with_the_csv_module(tmp_path: Path):
    path = tables.write_all(motions(), tmp_path / "all.csv", events=EVENTS)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["person", "frame", "time", "valid"] and list(rows[0])[-1] == "events"
    assert len(rows[0]) == 4 + 72 + 68 + 85 + 1
    assert rows[5]["smpl_pelvis_x"] == ""  # missing is an empty cell
    check_table(rows, lambda v: float(v) if v != "" else math.nan)


def test_parquet_reads_back_with_pyarrow(tmp_path: Path):
    fractions: list[float] = []
    path = tables.write_all(motions(), tmp_path / "all.parquet", events=EVENTS, progress=fractions.append)
    table = pq.read_table(path)
    assert table.schema.metadata[b"format_version"] == b"1"
    assert str(table.schema.field("time").type) == "double" and str(table.schema.field("person").type) == "int32"
    check_table(table.to_pylist(), lambda v: math.nan if v is None else float(v))
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_without_smpl_parameters_and_bad_suffix(tmp_path: Path):
    path = tables.write_parquet_all([person(2, 10, keypoints=False)], tmp_path / "t.parquet", smpl=False)
    names = pq.read_table(path).column_names
    assert len(names) == 4 + 72 + 1 and "betas_0" not in names and "coco_nose_x" not in names
    csv_path = tables.write_csv_all([person(2, 10)], tmp_path / "t.csv", smpl=False)
    assert csv_path.read_bytes().count(b"\r\n") == 11
    with pytest.raises(ExportError, match=r"t\.xlsx"):
        tables.write_all(motions(), tmp_path / "t.xlsx")


def red_rows(image: np.ndarray, x: float) -> np.ndarray:
    """The image rows where the column at display x (pixels from the left) is red."""
    pixels = image[:, int(round(x)) - 1 : int(round(x)) + 2, :3]
    red = (pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    return np.flatnonzero(red.any(axis=1))


def test_plot_png_with_the_fall_drawn_at_its_time(tmp_path: Path):
    result = plot.write_all(motions(), tmp_path / "session.png", events=EVENTS)
    image = matplotlib.image.imread(result.path)
    assert image.shape[:2] == (700, 1400)
    assert image[..., :3].std() > 0.05
    one, two = result.heights[1], result.heights[2]
    height = image.shape[0]

    x, _ = one.transData.transform((FALL_T, 0.0))
    top, bottom = height - one.bbox.y1, height - one.bbox.y0  # the panel's rows in the image
    rows = red_rows(image, x)
    rows = rows[(rows > top) & (rows < bottom)]
    assert len(rows) > 0.8 * (bottom - top)  # a red line across person 1's panel at the fall
    assert len(red_rows(image, one.transData.transform((1.5, 0.0))[0])) == 0  # nothing red elsewhere
    x2, _ = two.transData.transform((FALL_T, 0.0))
    rows2 = red_rows(image, x2)
    assert not ((rows2 > height - two.bbox.y1) & (rows2 < height - two.bbox.y0)).any()  # not person 2's fall
    assert one.get_xlim() == pytest.approx((0.0, 89 / FPS))  # the event at 99 s does not stretch it


def test_plot_draws_each_persons_path_and_heights(tmp_path: Path):
    result = plot.write_all(motions(), tmp_path / "session.png")
    lines = result.floor.get_lines()
    paths = [line for line in lines if line.get_label().startswith("person")]
    assert [line.get_label() for line in paths] == ["person 1", "person 2"]
    assert np.allclose(np.asarray(paths[1].get_ydata(), float)[[0, -1]], 2.0)
    head = result.heights[1].get_lines()[0]
    assert np.nanmax(np.asarray(head.get_ydata(), float)) == pytest.approx(1.15)
    assert np.nanmin(np.asarray(head.get_ydata(), float)) == pytest.approx(0.85)
    with pytest.raises(ExportError, match="no motion"):
        plot.write_all([], tmp_path / "none.png")
