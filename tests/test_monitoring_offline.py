"""``python -m monitoring``: the live rules over a results file or a recorded session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from monitoring_poses import motion

from core.camera import uncalibrated
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D, Person
from monitoring.__main__ import main
from recording.writer import SessionRecorder

FPS = 10.0
# person 1 stands by; person 2 falls at t = 3.0-3.5 s and lies on the floor until 8 s
STANDER = motion([(0, "standing", 2.0, 0.0), (8, "standing", 2.0, 0.0)], FPS, noise=0.01, seed=1)[1]
TIMES, FALLER = motion(
    [(0, "standing", 0, 0), (3.0, "standing", 0, 0), (3.5, "on_floor", 0.3, 0), (8, "on_floor", 0.3, 0)], FPS, 0.01
)


def people_file(path: Path, timestamps: bool = True) -> Path:
    T = len(TIMES)
    points = np.stack([np.stack(STANDER), np.stack(FALLER)], axis=1)  # [T, 2, 17, 4]
    arrays = {"people_ids": np.tile([1, 2], (T, 1)), "people_keypoints3d": points}
    if timestamps:
        arrays["timestamps"] = 100.0 + TIMES
    np.savez(path, **arrays)
    return path


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_fall_in_a_people_results_file_is_found_for_the_right_person(tmp_path: Path, capsys) -> None:
    out = tmp_path / "events.jsonl"
    assert (
        main(["--results", str(people_file(tmp_path / "r.npz")), "--out", str(out), "--start", "2026-11-28T23:00:00+01:00"]) == 0
    )
    falls = [e for e in events(out) if e["type"] == "fall"]
    assert len(falls) == 1 and falls[0]["person"] == 2 and falls[0]["phase"] == "raised"
    impact = 100.0 + 3.5
    assert 0.0 <= falls[0]["t"] - impact <= 1.0  # raised within a second of reaching the floor
    assert falls[0]["state"]["posture"] == "on_floor" and falls[0]["state"]["head_z"] < 0.5
    assert falls[0]["wall"].startswith("2026-11-28T23:00:0")  # wall clock from --start plus session seconds
    count = [e for e in events(out) if e["type"] == "people_count"]
    assert count and count[0]["detail"]["count"] == 2
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("views", [1, 2])
def test_a_fall_seen_by_one_view_only_is_a_guess_and_raises_nothing(tmp_path: Path, views: int) -> None:
    """As live (monitoring.state.one_view): keypoints seen in one view were placed at a guessed depth."""
    T = len(TIMES)
    seen = np.zeros((T, 2, 3, 17, 3))
    seen[:, :, :2, :, 2] = 0.9  # both people seen by views 0 and 1 ...
    seen[:, 1, 1:, :, 2] = 0.0 if views == 1 else seen[:, 1, 1:, :, 2]  # ... or the faller by view 0 only
    path = tmp_path / "r.npz"
    np.savez(path, people_ids=np.tile([1, 2], (T, 1)), people_keypoints3d=np.stack([np.stack(STANDER), np.stack(FALLER)], axis=1),
             people_keypoints2d=seen, timestamps=100.0 + TIMES)  # fmt: skip
    out = tmp_path / "events.jsonl"
    assert main(["--results", str(path), "--out", str(out)]) == 0
    falls = [e["person"] for e in events(out) if e["type"] == "fall" and e["phase"] == "raised"]
    assert falls == ([] if views == 1 else [2])


@pytest.mark.parametrize("layout", ["people_view", "keypoints2d", "placed"])
def test_an_uncalibrated_rooms_results_count_the_view_that_sees_most(tmp_path: Path, layout: str) -> None:
    # three views, each tracking the same two people on its own: known from people_view, or from the
    # one view holding each person's 2D (a file whose people_view was not filled: no bodies); people
    # placed in the room count one each, whatever people_view says (a calibrated room's one-view body)
    T = len(TIMES)
    view = np.tile([0, 0, 1, 1, 2, 2], (T, 1))
    arrays = {"people_ids": np.tile(np.arange(1, 7), (T, 1)), "people_keypoints3d": np.full((T, 6, 17, 4), np.nan),
              "timestamps": 100.0 + TIMES}  # fmt: skip
    if layout == "keypoints2d":
        seen = np.zeros((T, 6, 3, 17, 3))
        seen[np.arange(T)[:, None], np.arange(6), view, :, 2] = 0.9
        arrays["people_keypoints2d"], arrays["people_view"] = seen, np.full((T, 6), -1)
    else:
        arrays["people_view"] = view
    if layout == "placed":
        arrays["people_keypoints3d"] = np.stack([np.stack(STANDER)] * 6, axis=1)
    path = tmp_path / "r.npz"
    np.savez(path, **arrays)
    out = tmp_path / "events.jsonl"
    assert main(["--results", str(path), "--out", str(out)]) == 0
    assert [e["detail"]["count"] for e in events(out) if e["type"] == "people_count"] == [6 if layout == "placed" else 2]


def test_a_file_without_timestamps_needs_fps(tmp_path: Path, capsys) -> None:
    source = people_file(tmp_path / "r.npz", timestamps=False)
    out = tmp_path / "events.jsonl"
    assert main(["--results", str(source), "--out", str(out)]) == 2
    assert "has no 'timestamps'; give the frame rate with --fps" in capsys.readouterr().err
    assert main(["--results", str(source), "--out", str(out), "--fps", str(FPS)]) == 0
    fall = next(e for e in events(out) if e["type"] == "fall")
    assert 3.5 <= fall["t"] <= 4.5


def test_single_person_layout_of_out_files(tmp_path: Path) -> None:
    points = np.stack(FALLER)
    np.savez(
        tmp_path / "one.npz", keypoints3d=points[..., :3].astype(np.float32), keypoints3d_conf=points[..., 3], timestamps=TIMES
    )
    out = tmp_path / "events.jsonl"
    assert main(["--results", str(tmp_path / "one.npz"), "--out", str(out)]) == 0
    assert [e["person"] for e in events(out) if e["type"] == "fall"] == [1]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"people_ids": np.ones((5, 1), int)}, "neither people_joints nor people_keypoints3d"),
        ({"people_ids": np.ones((5, 1), int), "people_keypoints3d": np.zeros((4, 1, 17, 4))},
         "field 'people_keypoints3d' must have shape"),
        ({"keypoints": np.zeros((5, 2, 17, 3))}, "no bodies"),
        ({"people_ids": np.ones((3, 1), int), "people_keypoints3d": np.zeros((3, 1, 17, 4)), "timestamps": np.array([0, 2, 1.0])},
         "never go back"),
    ],
)  # fmt: skip
def test_bad_results_files_name_the_file_and_field(tmp_path: Path, capsys, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    assert main(["--results", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "e.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"results file {tmp_path / 'bad.npz'}" in err and message in err
    assert main(["--results", str(tmp_path / "none.npz"), "--out", str(tmp_path / "e.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_recorded_session_is_watched_with_its_ids(tmp_path: Path) -> None:
    camera = uncalibrated("cam", (64, 48))
    recorder = SessionRecorder(tmp_path / "session", [camera], store_video=False).start()
    for i, t in enumerate(TIMES):
        frame = Frame("cam", np.zeros((48, 64, 3), np.uint8), 50.0 + t, i)
        estimate = BodyEstimate(FrameSet({"cam": frame}, 50.0 + t, i), {"cam": Keypoints2D.empty("cam")})
        for pid, track in ((4, STANDER), (7, FALLER)):
            estimate.people.append(Person(pid, {"cam": Keypoints2D.empty("cam")}, track[i].astype(np.float32)))
        recorder.add(estimate, block=True)
    recorder.stop()
    assert recorder.recorded == len(TIMES)
    out = tmp_path / "events.jsonl"
    assert main(["--results", f"session:{tmp_path / 'session'}", "--out", str(out)]) == 0
    falls = [e for e in events(out) if e["type"] == "fall"]
    assert [e["person"] for e in falls] == [7]
    assert 0.0 <= falls[0]["t"] - (50.0 + 3.5) <= 1.0


def test_a_looping_replay_starts_the_people_afresh_and_the_wall_clock_goes_on() -> None:
    import datetime as dt

    from monitoring_poses import observe

    from monitoring.config import MonitorConfig
    from monitoring.monitor import Monitor

    start = dt.datetime(2026, 11, 28, 23, 0, tzinfo=dt.UTC)
    monitor = Monitor(MonitorConfig(), wall_start=start)
    seen = []
    for _ in range(2):  # the same 8 s twice, as a looping demo plays it
        for t, points in zip(TIMES, FALLER, strict=True):
            seen += monitor.update(100.0 + t, [observe(2, points)])
    falls = [e for e in seen if e.type == "fall"]
    assert [e.phase for e in falls] == ["raised", "resolved", "raised"]
    assert falls[1].detail["reason"] == "the replay started again"
    walls = [dt.datetime.fromisoformat(e.wall) for e in seen]
    assert walls == sorted(walls) and (walls[-1] - start).total_seconds() == pytest.approx(8.0 + 3.9, abs=0.15)
