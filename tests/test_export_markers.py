"""Marker exports (recording.exports.c3d, recording.exports.trc) of a synthetic motion whose every
marker position is known: read back with ezc3d and with a small TRC reader written here."""

from __future__ import annotations

from pathlib import Path

import ezc3d
import numpy as np
import pytest

from core.types import COCO17_NAMES
from recording.exports import ExportError, c3d, trc
from recording.exports.trc import SMPL_JOINT_NAMES, markers
from recording.motion import Motion

FPS = 30.0
INVALID = (3, 4)  # frames where the person has no world body


def motion(frames: int = 40, keypoints: bool = True, person: int = 1) -> Motion:
    """Walking along +x at 1 m/s; joint j at height 0.05 j m and y = person + 0.01 j; keypoint k at
    y = -0.02 k, height 1 + 0.03 k, confidence 0.5 + 0.01 k."""
    T = frames
    times = 10.0 + np.arange(T) / FPS
    joints = np.zeros((T, 24, 3))
    joints[..., 0] = times[:, None] - 10.0
    joints[..., 1] = person + 0.01 * np.arange(24)
    joints[..., 2] = 0.05 * np.arange(24)
    k3d = np.zeros((T, 17, 4))
    k3d[..., 0] = times[:, None] - 10.0
    k3d[..., 1] = -0.02 * np.arange(17)
    k3d[..., 2] = 1.0 + 0.03 * np.arange(17)
    k3d[..., 3] = 0.5 + 0.01 * np.arange(17)
    k3d[7, 2, :3] = np.nan  # one keypoint not triangulated in a valid frame
    valid = np.ones(T, bool)
    valid[list(INVALID)] = False
    orient, pose, transl = np.zeros((T, 3)), np.zeros((T, 23, 3)), joints[:, 0].copy()
    for a in (orient, pose, transl, joints, k3d):
        a[~valid] = np.nan
    return Motion(person, times, valid, orient, pose, transl, np.zeros(10), joints, k3d if keypoints else None)


def test_markers_are_named_keypoints_then_joints():
    names, points, conf = markers(motion())
    assert names[:17] == [f"coco_{n}" for n in COCO17_NAMES]
    assert names[17:] == [f"smpl_{n}" for n in SMPL_JOINT_NAMES] and len(set(names)) == 41
    assert points.shape == (40, 41, 3) and conf.shape == (40, 41)
    assert np.allclose(points[10, 17 + 15], [10 / FPS, 1 + 0.15, 0.75])  # the head joint
    assert np.isnan(points[3]).all() and (conf[3] == 0).all()
    assert conf[10, 2] == pytest.approx(0.52) and conf[7, 2] == 0 and conf[10, 20] == 1
    assert markers(motion(keypoints=False))[0] == [f"smpl_{n}" for n in SMPL_JOINT_NAMES]


def test_c3d_reads_back_with_names_units_rate_and_values(tmp_path: Path):
    m = motion()
    path = c3d.write(m, tmp_path / "p1.c3d")
    back = ezc3d.c3d(str(path))
    point = back["parameters"]["POINT"]
    names = list(point["LABELS"]["value"])
    assert names == markers(m)[0]
    assert point["UNITS"]["value"] == ["mm"]
    assert point["RATE"]["value"][0] == pytest.approx(FPS)
    assert back["header"]["points"]["frame_rate"] == pytest.approx(FPS)
    xyz = back["data"]["points"][:3]  # [3, M, T] mm
    assert xyz.shape == (3, 41, 40)
    head = names.index("smpl_head")
    assert np.allclose(xyz[:, head, 10], [1000 * 10 / FPS, 1150.0, 750.0], atol=0.1)
    nose = names.index("coco_nose")
    assert np.allclose(xyz[:, nose, 39], [1000 * 39 / FPS, 0.0, 1000.0], atol=0.1)
    expected = markers(m)[1].transpose(2, 1, 0) * 1000
    ok = np.isfinite(expected)
    assert np.abs(xyz[ok] - expected[ok]).max() < 0.1
    residuals = back["data"]["meta_points"]["residuals"][0]
    assert np.isnan(xyz[:, :, 3]).all() and (residuals[:, 3] < 0).all()
    assert np.isnan(xyz[:, names.index("coco_right_eye"), 7]).all() and residuals[names.index("coco_right_eye"), 7] < 0
    assert (residuals[:, 10] >= 0).all()


def test_c3d_y_up_and_without_keypoints(tmp_path: Path):
    back = ezc3d.c3d(str(c3d.write(motion(keypoints=False), tmp_path / "y.c3d", up="y")))
    assert len(back["parameters"]["POINT"]["LABELS"]["value"]) == 24
    head = back["data"]["points"][:3, 15, 10]
    assert np.allclose(head, [1000 * 10 / FPS, 750.0, -1150.0], atol=0.1)  # (x, z, -y)


def read_trc(path: Path) -> tuple[dict[str, str], list[str], np.ndarray]:
    """An independent TRC reader: header fields, marker names and the data rows [T, 2 + 3M] (NaN for NaN)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0].split("\t")[:3] == ["PathFileType", "4", "(X/Y/Z)"]
    header = dict(zip(lines[1].split("\t"), lines[2].split("\t"), strict=True))
    labels = lines[3].split("\t")
    assert labels[:2] == ["Frame#", "Time"]
    names = [n for n in labels[2:] if n]
    assert labels[2::3] == names  # each name spans X, Y, Z
    axes = lines[4].split("\t")
    assert axes[:2] == ["", ""] and axes[2:8] == ["X1", "Y1", "Z1", "X2", "Y2", "Z2"] and len(axes) == 2 + 3 * len(names)
    rows = [[float(v) for v in line.split("\t")] for line in lines[5:] if line.strip()]
    return header, names, np.array(rows)


def test_trc_header_and_values_are_y_up_millimetres(tmp_path: Path):
    m = motion()
    header, names, rows = read_trc(trc.write(m, tmp_path / "p1.trc"))
    assert header == {"DataRate": "30", "CameraRate": "30", "NumFrames": "40", "NumMarkers": "41", "Units": "mm",
                      "OrigDataRate": "30", "OrigDataStartFrame": "1", "OrigNumFrames": "40"}  # fmt: skip
    assert names == markers(m)[0]
    assert rows.shape == (40, 2 + 3 * 41)
    assert np.array_equal(rows[:, 0], np.arange(1, 41))
    assert np.allclose(rows[:, 1], m.times, atol=1e-6)
    head = 2 + 3 * names.index("smpl_head")
    assert np.allclose(rows[10, head : head + 3], [1000 * 10 / FPS, 750.0, -1150.0], atol=0.001)  # (x, z, -y)
    assert np.isnan(rows[3, 2:]).all() and np.isfinite(rows[10, 2:]).all()
    ankle = 2 + 3 * names.index("smpl_left_ankle")  # joint 7: y = 1.07, height 0.35
    assert np.allclose(rows[20, ankle : ankle + 3], [1000 * 20 / FPS, 350.0, -1070.0], atol=0.001)


def test_trc_z_up_metres_keeps_our_axes(tmp_path: Path):
    header, names, rows = read_trc(trc.write(motion(keypoints=False, person=2), tmp_path / "p2.trc", up="z", units="m"))
    assert header["Units"] == "m" and header["NumMarkers"] == "24"
    head = 2 + 3 * names.index("smpl_head")
    assert np.allclose(rows[10, head : head + 3], [10 / FPS, 2.15, 0.75], atol=1e-6)


def test_bad_arguments_are_named(tmp_path: Path):
    with pytest.raises(ValueError, match="units"):
        trc.write(motion(), tmp_path / "x.trc", units="cm")
    with pytest.raises(ValueError, match="up"):
        c3d.write(motion(), tmp_path / "x.c3d", up="x")
    with pytest.raises(ExportError, match="x.trc"):
        trc.write(motion(), tmp_path / "missing" / "x.trc")
    with pytest.raises(ExportError, match="x.c3d"):
        c3d.write(motion(), tmp_path / "missing" / "x.c3d")
