"""Session recording: read back, privacy mode, full disk, SIGKILL, and replay round trips."""

from __future__ import annotations

import errno
import json
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

from calibration.camera import uncalibrated
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D
from core.errors import SourceError
from recording.reader import load_results, read_metadata, recorded_sources
from recording.writer import RecordingError, SessionRecorder

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


def record(folder: Path, count: int, **kwargs) -> SessionRecorder:  # type: ignore[no-untyped-def]
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
    assert np.abs(frames[5].image.astype(int) - original).mean() < 2.0  # JPEG, quality 90
    results = load_results(tmp_path / "s")
    assert results["set_index"].tolist() == list(range(20))
    assert np.allclose(results["keypoints"][7, 1, :, :2], [7, 14])


def test_privacy_mode_stores_no_video(tmp_path: Path) -> None:
    record(tmp_path / "p", 5, store_video=False)
    assert not list((tmp_path / "p" / "videos").glob("*.mjpeg"))
    assert load_results(tmp_path / "p")["keypoints"].shape == (5, 2, 17, 3)
    with pytest.raises(SourceError, match=r"recorded without video \(--no-video\), so there are no frames to replay; "
                       r"python -m recording keypoints .*p --out FILE.npz exports its results"):
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


def test_sigkill_leaves_a_session_that_replays(tmp_path: Path) -> None:
    """`main.py --headless --record` on the looping demo, killed with SIGKILL: videos and results
    read back (losing at most about the last second) and the session replays."""
    folder = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "main.py", "--headless", "--record", str(folder), "--detector", "fake"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((folder / "results").glob("chunk_*.npz"))) < 3:
            time.sleep(0.2)
        time.sleep(1.5)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    meta = json.loads((folder / "session.json").read_text())
    assert "ended" not in meta  # it never got to finish
    results = load_results(folder)
    assert len(results["set_index"]) >= 3
    sources = recorded_sources(folder)
    last_frame = max(max(r[2] for r in s._rows) for s in sources)
    assert last_frame - results["timestamps"].max() <= 1.5  # results lag the videos by at most a chunk
    out = tmp_path / "replay.npz"
    command = [sys.executable, "main.py", "--headless", "--source", f"session:{folder}", "--frames", "5", "--detector", "fake"]
    replay = subprocess.run([*command, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    data = np.load(out)
    assert data["keypoints"].shape == (5, 4, 17, 3) and "K" in data  # the calibration came with the session
    assert np.allclose(data["keypoints"], results["keypoints"][:5], atol=1e-4)  # same frames, same keypoints


def test_demo_round_trip_with_blazepose_gives_the_same_keypoints(tmp_path: Path) -> None:
    """Record the real demo through the pipeline, replay the session through it again."""
    folder, live, again = tmp_path / "demo", tmp_path / "live.npz", tmp_path / "again.npz"

    def run(*args: str) -> None:
        result = subprocess.run([sys.executable, "main.py", "--headless", "--no-body", "--frames", "6", *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stderr

    run("--record", str(folder), "--out", str(live))
    run("--source", f"session:{folder}", "--out", str(again))
    a, b = np.load(live), np.load(again)
    assert np.allclose(a["timestamps"], b["timestamps"], atol=1e-6)  # the same frames
    seen = (a["keypoints"][..., 2] > 0.5) & (b["keypoints"][..., 2] > 0.5)
    distance = np.linalg.norm(a["keypoints"][..., :2] - b["keypoints"][..., :2], axis=-1)[seen]
    assert seen.sum() > 6 * 4 * 10
    assert np.median(distance) < 2.0 and np.mean(distance < 5.0) > 0.9  # JPEG-stored frames: within pixels
