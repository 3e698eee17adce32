"""Recorded sessions survive: SIGKILL at random moments, and a disk that fills up (a real 8 MB
tmpfs where the machine allows mounting one, and a simulated one everywhere)."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import recording.writer as writer
from capture.recorded import read_metadata, recorded_sources
from capture.session import open_session
from core.camera import uncalibrated
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D
from recording.reader import read_results
from recording.writer import RESERVE_BYTES, RESERVE_NAME, SessionRecorder

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["a", "b", "c", "d"]
SIZE = (320, 240)

# A recording process of our own: 4 noisy 320x240 cameras at 30 sets/s into a real SessionRecorder;
# after each add it prints "<sets added> <sets the writer has written>".
CHILD = (
    f"names, size = {NAMES!r}, {SIZE!r}\n"
    + """
import sys, time
import numpy as np
from core.camera import uncalibrated
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D
from recording.writer import SessionRecorder
rng = np.random.default_rng(0)
images = [rng.integers(0, 255, (size[1], size[0], 3), np.uint8) for _ in names]
recorder = SessionRecorder(sys.argv[1], [uncalibrated(n, size) for n in names], min_free_bytes=0).start()
start, i = time.perf_counter(), 0
while True:
    time.sleep(max(0.0, start + i / 30 - time.perf_counter()))
    points = np.zeros((17, 3), np.float32)
    points[:, 0], points[:, 2] = i, 0.9
    frames = {n: Frame(n, images[k], i / 30 + 0.001 * k, i) for k, n in enumerate(names)}
    recorder.add(BodyEstimate(FrameSet(frames, i / 30, i), {n: Keypoints2D(n, points) for n in names}))
    i += 1
    print(i, recorder.recorded, flush=True)
"""
)


def record_and_kill(folder: Path, delay: float) -> tuple[int, int]:
    """Run the recording process, SIGKILL it ``delay`` s after its first set; returns (sets added,
    sets written) as it last reported them."""
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first.wait(60), "the recording process did not start"
        time.sleep(delay)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
        reader.join(10)
    # The kill can cut the last report short ("12" of "12 11"): the last whole one, and a cut one's count
    whole = [line for line in lines if line.endswith("\n") and len(line.split()) == 2]
    added, written = (int(v) for v in whole[-1].split())
    if lines and not lines[-1].endswith("\n") and lines[-1].split():
        added = max(added, int(lines[-1].split()[0]))
    return added, written


@pytest.mark.slow
def test_sigkill_at_three_random_moments_loses_at_most_the_set_being_written(tmp_path: Path) -> None:
    seed = random.randrange(10**6)
    moments = [random.Random(seed + k).uniform(0.3, 2.5) for k in range(3)]
    for k, delay in enumerate(moments):
        folder = tmp_path / f"killed{k}"
        added, written = record_and_kill(folder, delay)
        where = f"seed {seed}, kill {k} after {delay:.2f} s: {added} added, {written} written"
        assert "ended" not in json.loads((folder / "session.json").read_text()), where  # it never finished
        sources = recorded_sources(folder)
        frames = [s.frame_count for s in sources]
        # A frame's table line (one system call) follows its whole JPEG: no half line, no line without its frame.
        assert [s.skipped for s in sources] == [{"bad_lines": 0, "incomplete_frames": 0, "damaged_frames": 0}] * 4, where
        # Video: everything the writer reported as written is there; at most the set being written is partial.
        assert written <= min(frames) and max(frames) - min(frames) <= 1 and max(frames) <= added + 1, f"{where}: {frames}"
        # Results: the same sets in order, at most the set being written missing, each the right one.
        results = read_results(folder).arrays
        count = len(results["set_index"])
        assert results["set_index"].tolist() == list(range(count)), where
        assert min(frames) - 1 <= count <= max(frames), f"{where}: {count} results, frames {frames}"
        assert np.array_equal(results["keypoints"][:, 0, 0, 0], np.arange(count)), where
        # The session replays: one set per whole frame-set, in order, none lost.
        session = open_session(f"session:{folder}")
        indices = [[f.index for f in s.frames.values()] for s in session.replay]
        session.replay.close()
        assert indices == [[i] * 4 for i in range(min(frames))], where
    # And through main.py (the last one).
    import main

    out = tmp_path / "replay.npz"
    argv = ["--headless", "--source", f"session:{folder}", "--detector", "fake", "--no-body", "--out", str(out)]
    assert main.main(argv) == 0
    assert np.load(out)["keypoints"].shape == (min(frames), 4, 17, 3)


# --- full disk ----------------------------------------------------------------------------------------
def noisy_estimate(i: int, rng: np.random.Generator) -> BodyEstimate:
    frames = {n: Frame(n, rng.integers(0, 255, (SIZE[1], SIZE[0], 3), np.uint8), i / 30, i) for n in NAMES}
    points = np.zeros((17, 3), np.float32)
    points[:, 0] = i
    return BodyEstimate(FrameSet(frames, i / 30, i), {n: Keypoints2D(n, points) for n in NAMES})


def record_until_full(folder: Path, limit_s: float = 60.0) -> SessionRecorder:
    recorder = SessionRecorder(folder, [uncalibrated(n, SIZE) for n in NAMES], min_free_bytes=0).start()
    rng = np.random.default_rng(1)
    deadline, i = time.monotonic() + limit_s, 0
    while not recorder.failed and time.monotonic() < deadline:
        recorder.add(noisy_estimate(i, rng))
        i += 1
        time.sleep(0.01)
    recorder.stop()
    return recorder


def check_full_disk_session(folder: Path, recorder: SessionRecorder, stderr: str) -> None:
    assert recorder.failed and recorder.message is not None and "the disk is full" in recorder.message
    assert recorder.recorded >= 3
    meta = read_metadata(folder)
    assert "ended" in meta and meta["sets"] == recorder.recorded
    assert meta["stop_reason"] == recorder.message == meta["error"]
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name == RESERVE_NAME]
    assert leftovers == []
    # Cut back to the last whole frame-set: every written set is whole, in the videos and the results.
    sources = recorded_sources(folder)
    assert [s.frame_count for s in sources] == [recorder.recorded] * 4
    assert all(not any(s.skipped.values()) for s in sources)
    results = read_results(folder)
    assert results.arrays["set_index"].tolist() == list(range(recorder.recorded)) and not results.skipped
    session = open_session(f"session:{folder}")
    assert sum(1 for _ in session.replay) == recorder.recorded
    session.replay.close()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


@pytest.fixture
def small_disk(tmp_path: Path):
    """An 8 MB tmpfs (needs root and a mount that is allowed; otherwise the test is skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("the full-disk test mounts an 8 MB tmpfs: no mount command on this machine")
    if os.geteuid() != 0:
        pytest.skip(f"the full-disk test mounts an 8 MB tmpfs, which needs root (running as uid {os.geteuid()})")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"the full-disk test cannot mount an 8 MB tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount
    if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_finalises_the_session_and_keeps_every_whole_set(small_disk: Path, capfd) -> None:
    folder = small_disk / "s"
    recorder = record_until_full(folder)
    check_full_disk_session(folder, recorder, capfd.readouterr().err)
    assert shutil.disk_usage(small_disk).free < 2 * RESERVE_BYTES  # it really was full


def test_a_simulated_full_disk_behaves_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    """Where no tmpfs can be mounted: every write fails with ENOSPC once 2 MB are written, and
    removing the reserve file frees its size again (as on a real disk)."""
    folder = tmp_path / "s"
    state = {"left": 2 * 2**20, "refilled": False}

    def limited(fd: int, data: memoryview) -> int:
        if not state["refilled"] and not (folder / RESERVE_NAME).exists() and (folder / "session.json").exists():
            state["left"], state["refilled"] = int(state["left"]) + RESERVE_BYTES, True
        if int(state["left"]) <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = os.write(fd, data[: int(state["left"])])
        state["left"] = int(state["left"]) - written
        return written

    monkeypatch.setattr(writer, "_write_fd", limited)
    recorder = record_until_full(folder)
    check_full_disk_session(folder, recorder, capfd.readouterr().err)
    assert state["refilled"]
