"""Live cameras: an MJPEG-over-HTTP server on loopback stands in for an IP camera; fake streams
with known timing stand in for USB cameras."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from capture.live import CameraState, LiveCamera, redact
from capture.sync import CameraGroup


def test_redact_hides_passwords_only() -> None:
    assert redact("rtsp://admin:s3cr3t@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert redact("http://user:p%40ss@cam.local/video.mjpg") == "http://user:***@cam.local/video.mjpg"
    assert redact("http://cam.local/video.mjpg") == "http://cam.local/video.mjpg"
    assert redact("usb:0") == "usb:0"


class FakeStream:
    """Frames at ``fps`` on the monotonic clock, the first at ``start``; each image carries its
    index in its pixel values (index % 250)."""

    def __init__(self, fps: float, start: float, size: tuple[int, int] = (64, 48)) -> None:
        self.fps, self.start, self.size, self.index = fps, start, size, 0

    def read(self) -> np.ndarray:
        due = self.start + self.index / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        image = np.full((self.size[1], self.size[0], 3), self.index % 250, np.uint8)
        self.index += 1
        return image

    def release(self) -> None:
        pass


def index_of(frame) -> int:
    return int(frame.image[0, 0, 0])


def test_group_pairs_frames_across_rates_and_reports_the_offset() -> None:
    """Two cameras at 10 fps, the second 30 ms behind, and a third at 5 fps: every set pairs the
    same instant's frames and the skew is the offset. Frames are timestamped when the reader thread
    gets them, and on a loaded machine some come 10 ms or more late; at these rates a frame would
    have to be over 20 ms late for a neighbouring one to become the nearest."""
    t0 = time.monotonic() + 0.2
    cams = [
        LiveCamera("a", "fake", opener=lambda _: FakeStream(10, t0)),
        LiveCamera("b", "fake", opener=lambda _: FakeStream(10, t0 + 0.030)),
        LiveCamera("c", "fake", opener=lambda _: FakeStream(5, t0 + 0.010)),
    ]
    group = CameraGroup(cams, tolerance_s=0.045)
    sets = []
    try:
        while len(sets) < 12:
            fs = group.next()
            assert fs is not None
            sets.append((fs, group.skew_ms))
    finally:
        group.close()
    full = [(fs, skew) for fs, skew in sets[2:] if set(fs.frames) == {"a", "b", "c"}]
    assert len(full) >= 4
    for fs, _ in full:
        a, b, c = (index_of(fs.frames[n]) for n in "abc")
        assert a == b and c == a // 2, (a, b, c)  # the same instant in every camera
    skew = float(np.median([s for _, s in full]))
    assert 20.0 < skew < 42.0, skew  # 30 ms apart (plus scheduling jitter)
    assert group.cameras[0].fps == pytest.approx(10, rel=0.2)


JPEG = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))[1].tobytes()


class MjpegServer:
    """A loopback MJPEG camera (multipart/x-mixed-replace at ~25 fps) that can be stopped and
    restarted on the same port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._live = threading.Event()

    def start(self) -> None:
        live, requests = self._live, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's naming
                requests.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while live.is_set():
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(JPEG))
                        self.wfile.write(JPEG + b"\r\n")
                        time.sleep(0.04)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._live.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._live.clear()  # open streams end
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.mark.slow
def test_ip_camera_drops_out_and_rejoins_while_the_group_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    server = MjpegServer()
    server.start()
    errors: list[BaseException] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    caplog.set_level(logging.INFO, logger="capture.live")
    url = f"http://viewer:secret@127.0.0.1:{server.port}/video.mjpg"
    ip = LiveCamera("ipcam", url, stall_s=0.5, backoff=0.1, max_backoff=0.4)
    t0 = time.monotonic()
    usb = LiveCamera("usb", "fake", opener=lambda _: FakeStream(25, t0))
    group = CameraGroup([ip, usb], tolerance_s=0.03, wait_s=0.3)
    states: list[CameraState] = []
    ip.subscribe(lambda health: states.append(health.state))

    def collect(seconds: float) -> list[set[str]]:
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            fs = group.next()
            assert fs is not None
            out.append(set(fs.frames))
        return out

    try:
        before = collect(1.5)
        assert any("ipcam" in s for s in before)
        server.stop()
        time.sleep(0.3)
        during = collect(1.5)
        assert during and all(s == {"usb"} for s in during[-5:])  # the group goes on without it
        assert ip.state in (CameraState.RECONNECTING, CameraState.STALLED)
        server.start()
        restarted = time.monotonic()
        rejoined = None
        while time.monotonic() - restarted < 3.0:
            fs = group.next()
            if fs is not None and "ipcam" in fs.frames:
                rejoined = time.monotonic() - restarted
                break
        assert rejoined is not None and rejoined < 0.4 + 0.5 + 0.5  # backoff cap + stall + a frame
        assert ip.state == CameraState.LIVE and ip.reconnects >= 1
        assert CameraState.RECONNECTING in states and states[-1] == CameraState.LIVE
    finally:
        group.close()
        server.stop()
        threading.excepthook = old_hook
    assert not errors
    assert server.requests and server.requests[0].startswith("Basic ")  # credentials were used...
    logged = caplog.text
    assert "viewer:***@127.0.0.1" in logged and "secret" not in logged  # ...but never logged
    assert ip.error is None or "secret" not in ip.error


def test_wrong_url_fails_once_with_a_clear_state() -> None:
    cam = LiveCamera("x", "ftp://example/video")
    cam.start()
    deadline = time.monotonic() + 3
    while cam.state != CameraState.FAILED and time.monotonic() < deadline:
        time.sleep(0.01)
    state = cam.state
    cam.stop()
    assert state == CameraState.FAILED
    assert cam.error == "camera URL ftp://example/video: unknown scheme 'ftp' (known: usb:N, rtsp://, http://, a file)"


@pytest.mark.slow
def test_capture_benchmark_json(tmp_path) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "bench.json"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "capture.benchmark", "--cameras", "4", "--seconds", "2", "--json", str(out)],
                            cwd=root, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert 20 < data["framesets_per_s"] < 40 and data["sets_with_all_cameras"] > 0.8  # cameras at 30 fps
    assert 0 < data["grab_to_frameset_ms"]["p50"] <= data["grab_to_frameset_ms"]["p95"] < 100
    assert set(data["per_camera"]) == {"cam0", "cam1", "cam2", "cam3"}


def test_room_file_round_trip_errors_and_a_dead_camera(tmp_path) -> None:
    from pathlib import Path

    from capture.room import CameraEntry, Room, RoomError, describe, load_room, open_room, save_room

    root = Path(__file__).resolve().parents[1]
    video = root / "assets" / "demo" / "videos" / "cam01.mp4"
    room = Room("Lab", [CameraEntry("door", str(video), (1080, 1920), 60.0),
                        CameraEntry("window", "http://admin:hunter2@127.0.0.1:9/x.mjpg", (640, 480), 30.0)])  # fmt: skip
    save_room(tmp_path / "room.toml", room)
    loaded = load_room(tmp_path / "room.toml")
    assert [(c.name, c.source, c.resolution, c.fps) for c in loaded.cameras] == [
        (c.name, c.source, c.resolution, c.fps) for c in room.cameras
    ]
    assert describe(loaded)[1] == "window: http://admin:***@127.0.0.1:9/x.mjpg 640x480 @ 30 fps"
    (tmp_path / "bad.toml").write_text('[room]\nname = "x"\n[[camera]]\nname = "a"\nsource = "usb:0"\nresolution = [640]\n')
    expected = r"bad.toml: camera 'a' \(#1\): field 'resolution' must be \[width, height\] in pixels \(1 to 16384\), not \[640\]"
    with pytest.raises(RoomError, match=expected):
        load_room(tmp_path / "bad.toml")
    group, cameras = open_room(loaded)
    assert [c.name for c in cameras] == ["door", "window"] and not any(c.calibrated for c in cameras)
    try:
        sets = [group.next() for _ in range(5)]  # the dead IP camera does not hold the group up
        assert all(fs is not None and set(fs.frames) == {"door"} for fs in sets)
        states = {h.name: h.state for h in group.health()}
        assert states["door"] == CameraState.LIVE and states["window"] in (CameraState.RECONNECTING, CameraState.CONNECTING)
    finally:
        group.close()


def test_source_kinds_and_capabilities(tmp_path) -> None:
    from capture.live import source_kind

    (tmp_path / "frames").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"x")
    assert source_kind("usb:1").live and not source_kind("usb:1").network
    assert source_kind("rtsp://a:b@h/s").network and source_kind("http://h/v.mjpg").network
    assert source_kind(str(tmp_path / "clip.mp4")).seekable and not source_kind(str(tmp_path / "clip.mp4")).live
    assert source_kind(str(tmp_path / "frames")).name == "images"
    assert source_kind("session:/x").name == "session"


@pytest.mark.slow
def test_headless_room_runs_on_the_demo_room(tmp_path) -> None:
    """``main.py --headless --room`` (the demo videos stand in for the cameras): every set holds all
    four views, calibrated, and the keypoints file says so."""
    from pathlib import Path

    import main

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "live.npz"
    code = main.main(["--headless", "--room", str(root / "assets" / "demo" / "room.toml"), "--out", str(out),
                      "--frames", "5", "--detector", "fake", "--no-body"])  # fmt: skip
    assert code == 0
    data = np.load(out, allow_pickle=False)
    assert data["keypoints"].shape == (5, 4, 17, 3)
    assert list(data["camera_names"]) == ["cam01", "cam02", "cam03", "cam04"]
    assert data["image_size"].tolist() == [[1080, 1920], [1080, 1920], [1088, 1920], [1088, 1920]]
    assert np.all(np.diff(data["timestamps"]) > 0)
    # every view delivered in every set: the fake person is seen everywhere once their track is
    # confirmed (the third set; before, nobody is confirmed)
    assert np.all(data["keypoints"][2:, ..., 2] > 0) and not np.any(data["keypoints"][:2, ..., 2] > 0)
    assert data["K"].shape == (4, 3, 3) and np.isfinite(data["keypoints3d"][2:]).all()
    assert data["people_ids"][:, 0].tolist() == [-1, -1, 1, 1, 1]


def write_counter_video(path, frames: int, fps: float = 30.0) -> None:
    """A video whose frame i is grey level 20 * i (so that a frame says which it is)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()


def test_room_stand_in_videos_play_in_step_and_restart_together(tmp_path) -> None:
    """Two 12-frame videos as cameras, the second camera started 0.25 s after the first: every set
    shows the same frame of both, through several loops (the old stand-ins each looped on their own
    clock, so the second ran 7 frames behind)."""
    from capture.room import CameraEntry, Room, open_room

    for name in ("a", "b"):
        write_counter_video(tmp_path / f"{name}.avi", 12)
    room = Room("Step", [CameraEntry(n, str(tmp_path / f"{n}.avi"), (64, 48), 30.0) for n in "ab"], path=tmp_path / "r.toml")
    group, _ = open_room(room)
    group.cameras[0].start()
    time.sleep(0.25)
    seen: list[tuple[int, int]] = []
    try:
        while len(seen) < 40:
            fs = group.next()
            assert fs is not None
            if set(fs.frames) == {"a", "b"}:
                seen.append(tuple(round(float(fs.frames[n].image.mean()) / 20) for n in "ab"))
            assert group.skew_ms == 0.0
    finally:
        group.close()
    assert all(a == b for a, b in seen), seen
    restarts = sum(1 for (x, _), (y, _) in itertools.pairwise(seen) if y < x)
    assert restarts >= 2, seen  # 40 sets of a 12-frame loop: the loop restarted, in both at once


def _wait_state(cam: LiveCamera, state: CameraState, seconds: float = 5.0) -> CameraState:
    deadline = time.monotonic() + seconds
    while cam.state != state and time.monotonic() < deadline:
        time.sleep(0.01)
    return cam.state


def test_bad_port_fails_the_camera_with_the_reason_and_no_thread_dies() -> None:
    errors: list[BaseException] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    cam = LiveCamera("door", "http://admin:pw99@cam.local:99999/video.mjpg")
    try:
        cam.start()
        assert _wait_state(cam, CameraState.FAILED) == CameraState.FAILED
        assert cam.error == "camera URL http://admin:***@cam.local:99999/video.mjpg: port '99999' is not a number from 1 to 65535"
    finally:
        cam.stop()
        threading.excepthook = old_hook
    assert not errors


@pytest.mark.parametrize(
    ("opener", "reason"),
    [
        (lambda _: int("nope"), "reader failed: ValueError: invalid literal for int() with base 10: 'nope'"),
        (lambda _: type("S", (), {"read": lambda self: "not an image", "release": lambda self: None})(),
         "reader failed: TypeError: the stream gave str, not an image"),
    ],
    ids=["opener-raises", "stream-gives-garbage"],
)  # fmt: skip
def test_unexpected_errors_in_a_reader_fail_the_camera(opener, reason) -> None:
    errors: list[BaseException] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    cam = LiveCamera("x", "fake", opener=opener)
    try:
        cam.start()
        assert _wait_state(cam, CameraState.FAILED) == CameraState.FAILED
        assert cam.health().error == reason
    finally:
        cam.stop()
        threading.excepthook = old_hook
    assert not errors


def test_a_room_that_never_delivers_gives_up_naming_each_camera() -> None:
    from core.errors import SourceError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens
    cams = [LiveCamera("door", f"http://admin:pw99@127.0.0.1:{port}/x.mjpg", backoff=0.05),
            LiveCamera("hall", "ftp://cam.local/x")]  # fmt: skip
    group = CameraGroup(cams, connect_timeout_s=0.8, label="room file lab.toml")
    start = time.monotonic()
    try:
        with pytest.raises(SourceError) as caught:
            group.next()
    finally:
        group.close()
    took = time.monotonic() - start
    message = str(caught.value)
    assert 0.7 < took < 5.0, took
    assert message.startswith("room file lab.toml: no camera delivered a frame in 0.8 s (connect_timeout): ")
    assert f"door (http://admin:***@127.0.0.1:{port}/x.mjpg) reconnecting: cannot connect: " in message
    assert "hall (ftp://cam.local/x) failed: camera URL ftp://cam.local/x: unknown scheme 'ftp'" in message
    assert "pw99" not in message


def test_a_room_whose_cameras_all_failed_says_so_at_once() -> None:
    from core.errors import SourceError

    group = CameraGroup([LiveCamera("hall", "ftp://cam.local/x")], connect_timeout_s=60, label="room file lab.toml")
    start = time.monotonic()
    try:
        with pytest.raises(SourceError, match=r"room file lab.toml: every camera failed: hall \(ftp://cam.local/x\) failed"):
            group.next()
    finally:
        group.close()
    assert time.monotonic() - start < 5.0
    assert list(iter(group)) == []  # closed: the iteration ends


def test_source_url_records_a_live_camera_without_its_password(tmp_path) -> None:
    """``--source http://user:password@...`` opens one live camera; the recording's session.json and
    the output name the camera without the password."""
    import json
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    import main

    server = MjpegServer()
    server.start()
    out = StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(out):
            code = main.main(["--headless", "--source", f"http://viewer:pa55word@127.0.0.1:{server.port}/video.mjpg?token=tok3n",
                              "--record", str(tmp_path / "rec"), "--frames", "3", "--detector", "fake", "--no-body"])  # fmt: skip
    finally:
        server.stop()
    assert code == 0, out.getvalue()
    assert server.requests and server.requests[0].startswith("Basic ")
    stored = (tmp_path / "rec" / "session.json").read_text()
    meta = json.loads(stored)
    assert meta["sets"] == 3
    assert f"http://viewer:***@127.0.0.1:{server.port}/video.mjpg?token=***" in stored
    assert "pa55word" not in stored + out.getvalue() and "tok3n" not in stored + out.getvalue()


def test_a_room_may_name_a_calibration_still_to_be_made(tmp_path) -> None:
    """``--calibrate room.toml`` makes the room's calibration file: loading the room does not need it;
    opening the room with it does, and says which field names it."""
    from capture.room import RoomError, load_room, open_room

    (tmp_path / "room.toml").write_text('[room]\ncalibration = "future.toml"\n[[camera]]\nname = "a"\nsource = "usb:0"\n'
                                        "resolution = [640, 480]\n")  # fmt: skip
    room = load_room(tmp_path / "room.toml")
    assert room.calibration == tmp_path / "future.toml" and room.connect_timeout == 15.0
    with pytest.raises(RoomError, match=r"room.toml: field 'room.calibration': calibration file .*future.toml not found"):
        open_room(room)
    group, cameras = open_room(room, uncalibrated_mode=True)
    assert [c.name for c in cameras] == ["a"] and not cameras[0].calibrated and group.cameras[0].state == CameraState.STOPPED
