"""Session recording: read back, privacy mode, full disk, SIGKILL, and replay round trips."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from capture.recorded import read_metadata, recorded_sources, skipped_counts
from core.camera import uncalibrated
from core.errors import SourceError
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D, Person
from recording.reader import load_results, read_results
from recording.writer import RecordingError, SessionRecorder, check_recording_folder
from tests.apprun import run_app

ROOT = Path(__file__).resolve().parents[1]
CAMERAS = [uncalibrated("left", (160, 120)), uncalibrated("right", (160, 120))]


def estimate(i: int) -> BodyEstimate:
    """Set ``i``: frames whose pixels encode i, keypoints at (i, 2i)."""
    frames = {}
    keypoints = {}
    for k, cam in enumerate(CAMERAS):
        image = np.zeros((120, 160, 3), np.uint8)
        cv2.rectangle(image, (10 + 3 * i, 20), (50 + 3 * i, 90), (40 * k + 60, 200, 255 - 5 * i), -1)
        frames[cam.name] = Frame(cam.name, image, 10.0 + i / 30 + 0.004 * k, 100 + i)
        points = np.zeros((17, 3), np.float32)
        points[:, 0], points[:, 1], points[:, 2] = i, 2 * i, 0.9
        keypoints[cam.name] = Keypoints2D(cam.name, points)
    return BodyEstimate(FrameSet(frames, 10.0 + i / 30, i), keypoints)


def record(folder: Path, count: int, **kwargs) -> SessionRecorder:
    recorder = SessionRecorder(folder, CAMERAS, **kwargs).start()
    for i in range(count):
        recorder.add(estimate(i))
        time.sleep(0.002)
    recorder.stop()
    return recorder


def test_recorded_session_reads_back_frames_timestamps_and_results(tmp_path: Path) -> None:
    recorder = record(tmp_path / "s", 20)
    assert recorder.recorded == 20 and recorder.dropped == 0
    meta = read_metadata(tmp_path / "s")
    assert meta["sets"] == 20 and meta["stop_reason"] == "stopped by the user" and meta["store_video"] is True
    sources = recorded_sources(tmp_path / "s")
    assert [s.name for s in sources] == ["left", "right"] and sources[0].image_size == (160, 120)
    assert sources[0].fps == pytest.approx(30, rel=0.01)
    frames = []
    while (frame := sources[1].read()) is not None:
        frames.append(frame)
    assert [f.index for f in frames] == list(range(100, 120))
    assert frames[5].timestamp == pytest.approx(10.0 + 5 / 30 + 0.004, abs=1e-6)
    original = estimate(5).frameset.frames["right"].image
    assert np.abs(frames[5].image.astype(int) - original).mean() < 2.0  # JPEG, quality 85
    results = load_results(tmp_path / "s")
    assert results["set_index"].tolist() == list(range(20))
    assert np.allclose(results["keypoints"][7, 1, :, :2], [7, 14])


def test_a_recorded_session_skips_without_decoding_in_real_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real-time replay of a session behind a slow consumer: late frames are passed over by their
    recorded timestamps, never decoded, and each set delivered is newer than the last."""
    from capture.replay import SessionReplay

    record(tmp_path / "s", 60)
    sources = recorded_sources(tmp_path / "s")
    decoded = []
    real_decode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or real_decode(*a))
    replay = SessionReplay(sources, realtime=True)
    indices = []
    try:
        while (fs := replay.next()) is not None:
            indices.append(fs.frames["left"].index)
            time.sleep(0.2)  # a consumer at 5 sets/s against a 30 fps recording
    finally:
        replay.close()
    assert indices == sorted(set(indices)) and len(indices) <= 15 and indices[-1] >= 150
    # Per camera: each set's frame and at most one look-ahead, and the first frame at opening.
    assert replay.skipped_sets > 0 and len(decoded) <= 2 * (2 * len(indices) + 1) < 60 * 2


def test_privacy_mode_stores_no_video(tmp_path: Path) -> None:
    record(tmp_path / "p", 5, store_video=False)
    assert not list((tmp_path / "p" / "videos").glob("*.mjpeg"))
    assert load_results(tmp_path / "p")["keypoints"].shape == (5, 2, 17, 3)
    with pytest.raises(
        SourceError,
        match=r"recorded without video \(--no-video\), so there are no frames to replay; "
        r"python -m recording keypoints .*p --out FILE.npz exports its results",
    ):
        recorded_sources(tmp_path / "p")


def test_not_enough_space_refuses_to_start_and_a_filling_disk_stops_cleanly(tmp_path: Path) -> None:
    tiny = lambda _: SimpleNamespace(free=10 * 2**20)  # noqa: E731
    with pytest.raises(RecordingError, match=r"only 10 MB free before recording"):
        SessionRecorder(tmp_path / "a", CAMERAS, disk_usage=tiny)
    calls = {"n": 0}

    def filling(_: str) -> SimpleNamespace:  # plenty at first, then the disk fills up
        calls["n"] += 1
        return SimpleNamespace(free=(10 if calls["n"] > 2 else 10_000) * 2**20)

    recorder = SessionRecorder(tmp_path / "b", CAMERAS, disk_usage=filling).start()
    for i in range(200):
        recorder.add(estimate(i))
        time.sleep(0.02)
        if not recorder.active:
            break
    recorder.stop()
    assert recorder.message is not None and "free while recording" in recorder.message
    assert 10 < recorder.recorded < 200
    meta = read_metadata(tmp_path / "b")
    assert "recording stopped, everything before is kept" in str(meta["stop_reason"])
    # Nothing already written is lost: every recorded set's frames and results read back.
    frames = sum(1 for _ in iter(recorded_sources(tmp_path / "b")[0].read, None))
    assert frames == recorder.recorded
    assert len(load_results(tmp_path / "b")["set_index"]) == recorder.recorded


def test_disk_full_while_writing_keeps_what_was_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = SessionRecorder(tmp_path / "c", CAMERAS).start()
    for i in range(5):
        recorder.add(estimate(i))
    time.sleep(0.5)
    import recording.writer as writer

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.cv2, "imencode", full)
    for i in range(5, 10):
        recorder.add(estimate(i))
    recorder.stop()
    assert recorder.message is not None and "disk is full" in recorder.message
    assert recorder.recorded == 5
    assert sum(1 for _ in iter(recorded_sources(tmp_path / "c")[0].read, None)) == 5


def test_refusals_create_nothing(tmp_path: Path) -> None:
    """Too little space, or a folder that is not empty: refused before anything is created."""
    tiny = lambda _: SimpleNamespace(free=10 * 2**20)  # noqa: E731
    with pytest.raises(RecordingError, match=r"recording folder .*new/deeper: only 10 MB free before recording"):
        SessionRecorder(tmp_path / "new" / "deeper", CAMERAS, disk_usage=tiny)
    assert not (tmp_path / "new").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(RecordingError, match="not empty"):
        SessionRecorder(tmp_path / "used", CAMERAS)
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RecordingError, match="is a file"):
        check_recording_folder(tmp_path / "afile" / "s")


def test_damaged_frames_and_bad_lines_are_skipped_counted_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "s"
    record(folder, 20)
    table = folder / "videos" / "left.csv"
    lines = table.read_text().splitlines(keepends=True)
    offset, length = (int(v) for v in lines[1 + 5].split(",")[3:5])
    with (folder / "videos" / "left.mjpeg").open("r+b") as video:  # frame 5: garbage bytes
        video.seek(offset)
        video.write(bytes(range(256)) * (length // 256) + bytes(length % 256))
    lines.insert(1 + 8, "garbage,line\n")  # a garbage line in the middle
    lines.append("20,120,10.6")  # a half-written last line
    table.write_text("".join(lines))
    caplog.set_level(logging.WARNING)
    left, right = recorded_sources(folder)
    frames = list(iter(left.read, None))
    assert [f.index for f in frames] == [100 + i for i in range(20) if i != 5]  # everything else replays
    assert left.skipped == {"bad_lines": 2, "incomplete_frames": 0, "damaged_frames": 1}
    assert skipped_counts([left, right]) == {"left": left.skipped, "right": dict.fromkeys(left.skipped, 0)}
    left.close()
    text = caplog.text
    assert "videos/left.csv: skipped 2 unreadable line(s) (line 10, 23)" in text
    assert "camera 'left' (videos/left.mjpeg): skipped 2 bad lines, 1 damaged frames" in text
    # Through the whole replay (main.py's path): 19 sets, the damaged one left out.
    from capture.session import open_session

    session = open_session(f"session:{folder}")
    sets = list(session.replay)
    session.replay.close()
    assert len(sets) == 19 and all(len(s.frames) == 2 for s in sets)


def test_an_old_looping_session_whose_timestamps_restart_replays_whole(tmp_path: Path) -> None:
    """Older versions restarted a looping demo's timestamps at every loop: all of it replays, in order."""
    folder = tmp_path / "s"
    record(folder, 20)
    for name in ("left", "right"):
        table = folder / "videos" / f"{name}.csv"
        lines = table.read_text().splitlines()
        rows = [line.split(",") for line in lines[1:]]
        for i, row in enumerate(rows):
            row[2] = f"{float(row[2]) - (10 / 30 if i >= 10 else 0):.6f}"  # the clock restarts at set 10
        table.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    from capture.session import open_session

    session = open_session(f"session:{folder}")
    sets = list(session.replay)
    session.replay.close()
    assert [s.index for s in sets] == list(range(20)) and session.replay.sources[0].timestamp_resets == 1
    times = [s.reference_time for s in sets]
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-3)


def test_results_of_an_unfinished_chunk_are_read_from_its_log(tmp_path: Path) -> None:
    """A crash before the chunk was written: its log holds every whole set; a cut last record is ignored."""
    folder = tmp_path / "s"
    recorder = SessionRecorder(folder, CAMERAS).start()
    for i in range(6):
        recorder.add(estimate(i))
    deadline = time.monotonic() + 10
    while recorder.recorded < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    log_file = folder / "results" / "chunk_000000.log"
    snapshot = log_file.read_bytes()  # as a SIGKILL would leave it
    recorder.stop()
    assert (folder / "results" / "chunk_000000.npz").is_file() and not log_file.exists()
    (folder / "results" / "chunk_000000.npz").unlink()
    log_file.write_bytes(snapshot + snapshot[:100])
    results = read_results(folder)
    assert results.arrays["set_index"].tolist() == list(range(6)) and results.from_log == 6 and not results.skipped
    assert np.allclose(results.arrays["keypoints"][4, 0, :, :2], [4, 8])


@pytest.mark.slow
def test_no_video_session_exports_keypoints_that_engine_evaluate_reprocesses(tmp_path: Path, capsys) -> None:
    """--no-video: not replayable (one clear error), but its results export to the exchange file
    (with the calibration snapshot) and engine.evaluate turns that into body results."""
    import main
    import recording.__main__ as cli
    from core.formats import load_keypoints_npz
    from engine import evaluate

    folder, out, bodies = tmp_path / "nv", tmp_path / "k.npz", tmp_path / "b.npz"
    argv = ["--headless", "--record", str(folder), "--no-video", "--detector", "fake", "--no-body", "--frames", "6"]
    assert main.main([*argv, "--out", str(tmp_path / "live.npz")]) == 0
    assert cli.main(["keypoints", str(folder), "--out", str(out)]) == 0
    assert f"wrote {out} (6 frame-sets, 4 views, calibrated)" in capsys.readouterr().out
    data, live = load_keypoints_npz(out), np.load(tmp_path / "live.npz")
    assert data.keypoints.shape == (6, 4, 17, 3) and data.calibrated
    assert np.allclose(data.keypoints, live["keypoints"]) and np.allclose(data.K, live["K"]) and np.allclose(data.t, live["t"])
    assert np.allclose(data.timestamps, live["timestamps"]) and data.camera_names == [str(n) for n in live["camera_names"]]
    assert np.allclose(np.load(out)["keypoints3d"], live["keypoints3d"], equal_nan=True)
    assert evaluate.main(["--keypoints", str(out), "--out", str(bodies)]) == 0
    fused = np.load(bodies)["fused"]  # from the third set on: the fake person's track is confirmed there
    assert np.load(bodies)["joints"].shape == (6, 24, 3) and fused.tolist() == [False, False, True, True, True, True]
    capsys.readouterr()
    assert main.main(["--headless", "--source", f"session:{folder}", "--out", str(tmp_path / "r.npz")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == [f"error: recorded session {folder}: recorded without video (--no-video), so there are no frames to "
                      f"replay; python -m recording keypoints {folder} --out FILE.npz exports its results"]  # fmt: skip


def test_a_file_source_can_wait_for_the_writer_instead_of_dropping(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path / "s", CAMERAS, queue_size=1, encoders=1).start()
    for i in range(30):
        recorder.add(estimate(i), block=True)
    recorder.stop()
    assert recorder.recorded == 30 and recorder.dropped == 0
    live = SessionRecorder(tmp_path / "t", CAMERAS, queue_size=1, encoders=1).start()
    for i in range(30):
        live.add(estimate(i))  # live capture never waits: a full queue drops and counts
    live.stop()
    assert live.dropped > 0 and live.recorded + live.dropped == 30


def test_writer_benchmark_reports_drops_encode_time_and_disk_use(tmp_path: Path) -> None:
    from recording import benchmark

    out = tmp_path / "bench.json"
    assert benchmark.main(["--cameras", "2", "--size", "160x120", "--fps", "30", "--seconds", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["sets_offered"] == 30 and result["sets_recorded"] + result["sets_dropped"] == 30
    assert result["encode_ms_per_frame"]["median"] > 0 and result["mb_per_minute"] > 0
    assert result["jpeg_quality"] == 85


@pytest.mark.slow
def test_sigkill_leaves_a_session_that_replays(tmp_path: Path) -> None:
    """`main.py --headless --record` on the looping demo, killed with SIGKILL: videos and results
    read back (the results lose at most the set being written) and the session replays."""
    folder = tmp_path / "killed"
    command = [sys.executable, "main.py", "--headless", "--record", str(folder), "--detector", "fake", "--no-body"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((folder / "results").glob("chunk_*.npz"))) < 1:
            time.sleep(0.2)
        time.sleep(0.7)  # into the next chunk
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    meta = json.loads((folder / "session.json").read_text())
    assert "ended" not in meta  # it never got to finish
    results = load_results(folder)
    sources = recorded_sources(folder)
    frames = [s.frame_count for s in sources]
    assert max(frames) - min(frames) <= 1 and min(frames) >= 2  # at most the set being written is partial
    assert results["set_index"].tolist() == list(range(len(results["set_index"])))
    assert len(results["set_index"]) >= min(frames) - 1  # results: at most the set being written is lost
    out = tmp_path / "replay.npz"
    command = [sys.executable, "main.py", "--headless", "--source", f"session:{folder}", "--frames", "2", "--detector",
               "fake", "--no-body", "--out", str(out)]  # fmt: skip
    replay = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    data = np.load(out)
    assert data["keypoints"].shape == (2, 4, 17, 3) and "K" in data  # the calibration came with the session
    assert np.allclose(data["keypoints"], results["keypoints"][:2], atol=1e-4)  # same frames, same keypoints


@pytest.mark.slow
def test_demo_round_trip_with_blazepose_gives_the_same_keypoints(tmp_path: Path) -> None:
    """Record the real demo through the pipeline, replay the session through it again."""
    folder, live, again = tmp_path / "demo", tmp_path / "live.npz", tmp_path / "again.npz"

    def run(*args: str) -> None:
        result = run_app("--headless", "--no-body", "--frames", "6", *args, timeout=600)
        assert result.returncode == 0, result.stderr

    run("--record", str(folder), "--out", str(live))
    run("--source", f"session:{folder}", "--out", str(again))
    a, b = np.load(live), np.load(again)
    assert np.allclose(a["timestamps"], b["timestamps"], atol=1e-6)  # the same frames
    seen = (a["keypoints"][..., 2] > 0.5) & (b["keypoints"][..., 2] > 0.5)
    distance = np.linalg.norm(a["keypoints"][..., :2] - b["keypoints"][..., :2], axis=-1)[seen]
    assert seen.sum() > 6 * 4 * 10
    # JPEG-stored frames: within pixels. Between full-frame passes the detector follows each person
    # from the region the last frame's landmarks give, so a frame's JPEG difference carries into the
    # next frames' regions (measured: median 1.55 px, 89 % within 5 px, on these 1080x1920 frames).
    assert np.median(distance) < 2.0 and np.mean(distance < 5.0) > 0.85


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_info_json_that_cannot_be_written_is_one_error_line(tmp_path: Path) -> None:
    """``python -m recording info --json F`` on a full device: one error line naming --json, no traceback."""
    from tests.badinput import run_entry
    from tests.test_bad_input_session import _base

    outcome = run_entry("recording", ["info", str(_base(True)), "--json", "/dev/full"])
    assert outcome.crashed is None, outcome.crashed
    assert outcome.code == 2
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: --json /dev/full: cannot write (No space left on device)"], outcome.stderr


def with_people(i: int) -> BodyEstimate:
    """Set ``i`` with people 1 and (from set 3 on) 2; person 1 leaves at set 6."""
    est = estimate(i)
    ids = [p for p in (1, 2) if (p == 1 and i < 6) or (p == 2 and i >= 3)]
    for track in ids:
        points = np.zeros((17, 3), np.float32)
        points[:, 0], points[:, 2] = 10 * track + i, 0.8
        k3d = np.tile([float(track), float(i), 1.0, 1.0], (17, 1))
        est.people.append(Person(track, {"left": Keypoints2D("left", points)}, k3d, first_seen=float(track)))
    return est


def test_every_tracked_person_is_kept_with_their_id_in_chunks_and_in_the_crash_log(tmp_path: Path) -> None:
    folder = tmp_path / "people"
    recorder = SessionRecorder(folder, CAMERAS).start()
    for i in range(9):
        recorder.add(with_people(i))
    deadline = time.monotonic() + 10
    while recorder.recorded < 9 and time.monotonic() < deadline:
        time.sleep(0.01)
    snapshot = (folder / "results" / "chunk_000000.log").read_bytes()
    recorder.stop()
    expected = [[1, -1]] * 3 + [[1, 2]] * 3 + [[2, -1]] * 3
    for arrays in (load_results(folder), None):
        if arrays is None:  # the same from the log alone, as a crash would leave it
            (folder / "results" / "chunk_000000.npz").unlink()
            (folder / "results" / "chunk_000000.log").write_bytes(snapshot)
            arrays = load_results(folder)
        assert arrays["people_ids"].tolist() == expected
        assert arrays["people_keypoints3d"][4, 1, 0].tolist() == [2.0, 4.0, 1.0, 1.0]
        assert arrays["people_keypoints2d"][7, 0, 0, 0, 0] == pytest.approx(27.0)
        assert np.isnan(arrays["people_keypoints3d"][7, 1]).all() and np.isnan(arrays["people_joints"]).all()
