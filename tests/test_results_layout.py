"""One results layout (format_version 2) for the headless --out file, a recorded session's merged
chunks and engine.evaluate's output; format-1 files still load; ``python -m recording results``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from core.camera import uncalibrated
from core.formats import (
    EXCHANGE_FORMAT_VERSION,
    RESULTS_FORMAT_VERSION,
    KeypointsRecorder,
    ResultsFileError,
    upgrade_results,
)
from core.types import BodyEstimate, Frame, FrameBody, FrameSet, Keypoints2D, Person
from monitoring.offline import load_track
from recording.__main__ import main
from recording.motion import MotionError, load_motions
from recording.reader import read_results
from recording.writer import SessionRecorder

CAMERAS = [uncalibrated("left", (160, 120)), uncalibrated("right", (160, 120))]
SETS = 8
LAYOUT = {  # field: shape after T (the single-person and people_* fields both writers share)
    "timestamps": (), "keypoints": (2, 17, 3), "keypoints3d": (17, 4), "global_orient": (3,), "body_pose": (23, 3),
    "betas": (10,), "transl": (3,), "joints": (24, 3), "valid": (), "fused": (), "view_body_pose": (2, 23, 3),
    "people_ids": (2,), "people_keypoints3d": (2, 17, 4), "people_joints": (2, 24, 3), "people_transl": (2, 3),
    "people_global_orient": (2, 3), "people_body_pose": (2, 23, 3), "people_betas": (2, 10),
}  # fmt: skip


def fused_body(x: float, turn: float = 0.0) -> FrameBody:
    """A fused body at (x, 0, 0) turned ``turn`` rad about Z, every joint at (x, 0, 0.9)."""
    c, s = np.cos(turn), np.sin(turn)
    orient, eye = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), np.eye(3)
    return FrameBody(
        view_orient=np.tile(eye, (2, 1, 1)), view_pose=np.tile(eye, (2, 23, 1, 1)), view_betas=np.zeros((2, 10)),
        view_cam=np.zeros((2, 3)), view_boxes=np.zeros((2, 3)), used=np.array([True, True]),
        orient=orient, pose=np.tile(eye, (23, 1, 1)), betas=np.full(10, 0.5), transl=np.array([x, 0.0, 0.0]),
        joints=np.tile([x, 0.0, 0.9], (24, 1)),
    )  # fmt: skip


def person_x(track: int, i: int) -> float:
    return 1.0 + 0.1 * i if track == 1 else -1.0


def people_estimate(i: int) -> BodyEstimate:
    """Set ``i`` (t = 10 + i / 30 s): person 1 in sets 0-5 walking along x (x = 1 + 0.1 i), person 2 in
    sets 3-7 standing at x = -1 turned by 0.1 i rad; the single-person fields describe the first."""
    t = 10.0 + i / 30
    frames = {c.name: Frame(c.name, np.zeros((120, 160, 3), np.uint8), t, i) for c in CAMERAS}
    points = np.zeros((17, 3), np.float32)
    points[:, 0], points[:, 1], points[:, 2] = i, 2 * i, 0.9
    estimate = BodyEstimate(FrameSet(frames, t, i), {c.name: Keypoints2D(c.name, points) for c in CAMERAS})
    for track in (1, 2):
        if (track == 1 and i < 6) or (track == 2 and i >= 3):
            x = person_x(track, i)
            k3d = np.tile([x, 0.0, 1.0, 0.8], (17, 1))
            body = fused_body(x, 0.1 * i if track == 2 else 0.0)
            estimate.people.append(Person(track, dict(estimate.keypoints2d), k3d, body=body, first_seen=float(track)))
    first = estimate.people[0]
    estimate.keypoints3d, estimate.body = first.keypoints3d, first.body
    return estimate


def write_out_file(path: Path) -> Path:
    """The headless --out file of the people sets."""
    recorder = KeypointsRecorder(CAMERAS)
    for i in range(SETS):
        recorder.add(people_estimate(i))
    recorder.save(path)
    return path


def record_session(folder: Path, events: list[dict[str, object]] = ()) -> Path:  # type: ignore[assignment]
    """A results-only session of the people sets (and ``events`` in its events.jsonl)."""
    recorder = SessionRecorder(folder, CAMERAS, video="results").start()
    for i in range(SETS):
        recorder.add(people_estimate(i))
    deadline = time.monotonic() + 10
    while recorder.recorded < SETS and time.monotonic() < deadline:
        time.sleep(0.01)
    for event in events:
        recorder.write_event(event)
    recorder.stop()
    return folder


def npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def test_out_file_and_session_have_the_same_fields_shapes_and_values(tmp_path: Path) -> None:
    out = npz(write_out_file(tmp_path / "out.npz"))
    merged = read_results(record_session(tmp_path / "s")).arrays
    for arrays in (out, merged):
        assert int(arrays["format_version"]) == RESULTS_FORMAT_VERSION == EXCHANGE_FORMAT_VERSION == 2
        assert {k: arrays[k].shape for k in LAYOUT} == {k: (SETS, *shape) for k, shape in LAYOUT.items()}
        assert not any(k.startswith("body_") and k != "body_pose" for k in arrays) and "keypoints3d_conf" not in arrays
    for key in LAYOUT:
        assert np.allclose(out[key], merged[key], equal_nan=True), key
    assert out["keypoints3d"][2, 0].tolist() == pytest.approx([1.2, 0.0, 1.0, 0.8])  # x y z metres, confidence
    assert out["people_ids"].tolist() == [[1, -1]] * 3 + [[1, 2]] * 3 + [[2, -1]] * 2
    assert out["transl"][7].tolist() == [-1.0, 0.0, 0.0]  # the single-person fields follow the first person
    assert out["people_global_orient"][5, 1, 2] == pytest.approx(0.5)  # person 2 turned 0.5 rad about Z


def format1_session(folder: Path) -> Path:
    """A session recorded by format 1: the body arrays as body_<field> in its chunks."""
    record_session(folder)
    for chunk in (folder / "results").glob("chunk_*.npz"):
        arrays = npz(chunk)
        old = {("body_" + k if k in ("global_orient", "body_pose", "betas", "transl", "joints", "valid", "fused")
                or k.startswith("view_") else k): v for k, v in arrays.items()}  # fmt: skip
        np.savez(chunk, **old)
    return folder


def test_a_format1_session_reads_in_the_new_layout(tmp_path: Path) -> None:
    folder = format1_session(tmp_path / "old")
    assert "body_body_pose" in npz(next((folder / "results").glob("chunk_*.npz")))
    arrays = read_results(folder).arrays
    assert arrays["body_pose"].shape == (SETS, 23, 3) and arrays["joints"][2, 0].tolist() == pytest.approx([1.2, 0.0, 0.9])
    assert not any(k.startswith("body_") and k != "body_pose" for k in arrays)
    motions = load_motions(folder)
    assert [m.person for m in motions] == [1, 2] and motions[0].transl[4].tolist() == pytest.approx([1.4, 0.0, 0.0])
    track = load_track(f"session:{folder}")
    assert [[o.person for o in seen] for seen in track.frames][3] == [1, 2]


def test_a_format1_out_file_still_loads(tmp_path: Path) -> None:
    """Format 1's --out: keypoints3d [T, 17, 3] with keypoints3d_conf [T, 17], format_version 1."""
    new = npz(write_out_file(tmp_path / "new.npz"))
    old = {k: v for k, v in new.items() if not k.startswith("people_")}
    k3d = new["keypoints3d"]
    old |= {"format_version": np.array(1), "keypoints3d": k3d[..., :3], "keypoints3d_conf": k3d[..., 3]}
    np.savez(tmp_path / "old.npz", **old)
    (motion,) = load_motions(tmp_path / "old.npz")
    assert motion.person == 1 and motion.keypoints3d is not None
    assert np.allclose(motion.keypoints3d, new["keypoints3d"], equal_nan=True)  # the confidence joined back on
    assert motion.valid.all() and motion.transl[7].tolist() == [-1.0, 0.0, 0.0]
    track = load_track(str(tmp_path / "old.npz"))
    assert all(len(seen) == 1 for seen in track.frames)
    upgraded = upgrade_results({"keypoints3d": np.zeros((2, 17, 3))}, "x")  # no conf field: finite points count
    assert upgraded["keypoints3d"][..., 3].tolist() == [[1.0] * 17] * 2


def test_a_newer_format_is_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    arrays = npz(write_out_file(tmp_path / "out.npz")) | {"format_version": np.array(3)}
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(MotionError, match=r"future\.npz: field format_version is 3; this version reads 1 to 2"):
        load_motions(tmp_path / "future.npz")
    with pytest.raises(ResultsFileError, match="format_version"):
        upgrade_results({"format_version": np.array([1, 2])}, "somewhere")


def test_results_command_merges_a_session_into_the_out_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = record_session(tmp_path / "s")
    assert main(["results", str(folder), "--out", str(tmp_path / "merged.npz")]) == 0
    assert "8 frame-sets, 2 people" in capsys.readouterr().out
    merged, out = npz(tmp_path / "merged.npz"), npz(write_out_file(tmp_path / "out.npz"))
    assert set(out) - set(merged) == set() and set(merged) - set(out) == {"set_index"}
    for key in out:
        assert np.array_equal(out[key], merged[key], equal_nan=out[key].dtype.kind == "f"), key
    assert [m.person for m in load_motions(tmp_path / "merged.npz")] == [1, 2]


def test_results_command_errors_are_one_line_naming_the_session_or_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = record_session(tmp_path / "s")
    assert main(["results", str(tmp_path / "none"), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none" in err and not (tmp_path / "m.npz").exists()
    assert main(["results", str(folder), "--out", str(tmp_path / "m.txt")]) == 2
    assert "--out" in capsys.readouterr().err and not (tmp_path / "m.txt").exists()
    for chunk in (folder / "results").glob("chunk_*"):
        chunk.write_bytes(b"garbage")
    assert main(["results", str(folder), "--out", str(tmp_path / "m.npz")]) == 2
    assert "results/chunk_000000" in capsys.readouterr().err
