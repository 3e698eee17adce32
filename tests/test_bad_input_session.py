"""Bad recorded sessions, through ``main.py --source session:DIR`` and ``python -m recording``: each
case exits 2 with one ``error:`` line naming the file, camera or field, before any model loads."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.camera import uncalibrated
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D
from recording.writer import SessionRecorder
from tests.badinput import Case, check_case, parametrize

MAIN = ["--headless", "--source", "session:{tmp}/s", "--out", "{tmp}/o.npz", "--detector", "fake", "--no-body"]
KEYPOINTS = ["keypoints", "{tmp}/s", "--out", "{tmp}/o.npz"]
INFO = ["info", "{tmp}/s"]
CAMERAS = [uncalibrated("left", (64, 48)), uncalibrated("right", (64, 48))]
_BASE: dict[bool, Path] = {}


def _base(store_video: bool) -> Path:
    """A small valid session (4 sets, 2 cameras), recorded once per test process."""
    if store_video not in _BASE:
        folder = Path(tempfile.mkdtemp(prefix="bad_session_")) / "s"
        atexit.register(shutil.rmtree, folder.parent, True)
        recorder = SessionRecorder(folder, CAMERAS, store_video=store_video, min_free_bytes=0).start()
        for i in range(4):
            image = np.full((48, 64, 3), 40 * i, np.uint8)
            frames = {c.name: Frame(c.name, image, i / 30, i) for c in CAMERAS}
            points = np.full((17, 3), 0.5, np.float32)
            recorder.add(BodyEstimate(FrameSet(frames, i / 30, i), {c.name: Keypoints2D(c.name, points) for c in CAMERAS}))
        recorder.stop()
        _BASE[store_video] = folder
    return _BASE[store_video]


def session(change: Callable[[Path], None] = lambda s: None, store_video: bool = True) -> Callable[[Path], None]:
    """``make``: a copy of the valid session in {tmp}/s, then ``change(folder)``."""

    def make(tmp: Path) -> None:
        shutil.copytree(_base(store_video), tmp / "s")
        change(tmp / "s")

    return make


def meta(**fields: object) -> Callable[[Path], None]:
    """Change session.json's fields (a value of ... removes the field)."""

    def change(folder: Path) -> None:
        data = json.loads((folder / "session.json").read_text())
        for key, value in fields.items():
            data.pop(key) if value is ... else data.__setitem__(key, value)
        (folder / "session.json").write_text(json.dumps(data))

    return change


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)

    return change


def remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def damage_all_frames(folder: Path) -> None:
    video = folder / "videos" / "left.mjpeg"
    video.write_bytes(bytes(range(7, 250)) * (video.stat().st_size // 243 + 1))


def garbage_chunks(folder: Path) -> None:
    for path in (folder / "results").glob("chunk_*.npz"):
        path.write_bytes(b"PK\x03\x04 not really a zip")


def wrong_views_chunk(folder: Path) -> None:
    for path in (folder / "results").glob("chunk_*.npz"):
        data = dict(np.load(path))
        data["keypoints"] = np.zeros((len(data["set_index"]), 3, 17, 3), np.float32)
        np.savez(path, **data)


def empty_results(folder: Path) -> None:
    for path in (folder / "results").iterdir():
        path.unlink()


def garbage_log_only(folder: Path) -> None:
    empty_results(folder)
    (folder / "results" / "chunk_000000.log").write_bytes(b"RSET\xff\xff\xff\x7f cut off")


CALIBRATION_3 = "".join(
    f'[cam_{k}]\nname = "c{k}"\nsize = [64, 48]\nmatrix = [[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]]\n'
    f"distortions = [0.0, 0.0, 0.0, 0.0, 0.0]\nrotation = [0.0, 0.0, 0.0]\ntranslation = [{k}.0, 0.0, 0.0]\n\n"
    for k in range(3)
)

# fmt: off
CASES = [
    # session.json, through main.py
    Case("folder-missing", "main", [*MAIN[:2], "session:{tmp}/nope", *MAIN[3:]], expect=["nope", "folder not found"]),
    Case("json-missing", "main", MAIN, expect=["/s", "no session.json"], make=session(remove("session.json"))),
    Case("json-list", "main", MAIN, expect=["session.json", "list"], make=session(write("session.json", "[1, 2]"))),
    Case("json-not-json", "main", MAIN, expect=["session.json", "not valid json"], make=session(write("session.json", "{oops"))),
    Case("json-empty", "main", MAIN, expect=["session.json", "not valid json"], make=session(write("session.json", ""))),
    Case("json-not-utf8", "main", MAIN, expect=["session.json", "utf-8"], make=session(write("session.json", b"\xff\xfe{"))),
    Case("json-number", "main", MAIN, expect=["session.json", "number"], make=session(write("session.json", "42"))),
    Case("version-missing", "main", MAIN, expect=["session.json", "format_version", "missing"],
         make=session(meta(format_version=...))),  # fmt: skip
    Case("version-newer", "main", MAIN, expect=["session.json", "format_version", "99"], make=session(meta(format_version=99))),
    Case("version-text", "main", MAIN, expect=["session.json", "format_version", "'1'"], make=session(meta(format_version="1"))),
    Case("cameras-missing", "main", MAIN, expect=["session.json", "cameras", "missing"], make=session(meta(cameras=...))),
    Case("cameras-not-list", "main", MAIN, expect=["session.json", "cameras", "string"], make=session(meta(cameras="left"))),
    Case("cameras-empty", "main", MAIN, expect=["session.json", "cameras", "empty"], make=session(meta(cameras=[]))),
    Case("camera-not-object", "main", MAIN, expect=["session.json", "cameras[0]", "string"],
         make=session(meta(cameras=["left", "right"]))),  # fmt: skip
    Case("camera-name-missing", "main", MAIN, expect=["session.json", "cameras[1].name", "missing"],
         make=session(meta(cameras=[{"name": "left"}, {"image_size": [64, 48]}]))),  # fmt: skip
    Case("camera-name-number", "main", MAIN, expect=["session.json", "cameras[0].name", "3"],
         make=session(meta(cameras=[{"name": 3}]))),  # fmt: skip
    Case("camera-name-empty", "main", MAIN, expect=["session.json", "cameras[0].name", "non-empty"],
         make=session(meta(cameras=[{"name": " "}]))),  # fmt: skip
    Case("camera-name-path", "main", MAIN, expect=["session.json", "cameras[0].name", "../x", "file name"],
         make=session(meta(cameras=[{"name": "../x"}]))),  # fmt: skip
    Case("camera-name-twice", "main", MAIN, expect=["session.json", "cameras[1].name", "left", "twice"],
         make=session(meta(cameras=[{"name": "left"}, {"name": "left"}]))),  # fmt: skip
    Case("camera-size-bad", "main", MAIN, expect=["session.json", "cameras[0].image_size", "-1"],
         make=session(meta(cameras=[{"name": "left", "image_size": [0, -1]}]))),  # fmt: skip
    Case("store-video-text", "main", MAIN, expect=["session.json", "store_video", "string"],
         make=session(meta(store_video="yes"))),  # fmt: skip
    # frame tables and videos
    Case("csv-missing", "main", MAIN, expect=["'left'", "left.csv", "missing"], make=session(remove("videos/left.csv"))),
    Case("csv-header-only", "main", MAIN, expect=["'left'", "left.csv", "no frames"],
         make=session(write("videos/left.csv", "set_index,frame_index,timestamp,offset,length\n"))),  # fmt: skip
    Case("csv-empty", "main", MAIN, expect=["'left'", "left.csv", "no frames"], make=session(write("videos/left.csv", ""))),
    Case("csv-all-garbage", "main", MAIN, expect=["'left'", "left.csv", "no frames", "4 unreadable"],
         make=session(write("videos/left.csv", "header\nx\n1,2\n;;;;\n\x00\x01\n"))),  # fmt: skip
    Case("video-missing", "main", MAIN, expect=["'right'", "right.mjpeg", "missing"], make=session(remove("videos/right.mjpeg"))),
    Case("video-empty", "main", MAIN, expect=["'left'", "left.mjpeg", "cut off"], make=session(write("videos/left.mjpeg", b""))),
    Case("all-frames-damaged", "main", MAIN, expect=["'left'", "left.mjpeg", "damaged"], make=session(damage_all_frames)),
    Case("no-video-session", "main", MAIN, expect=["/s", "recorded without video", "python -m recording keypoints"],
         make=session(store_video=False)),  # fmt: skip
    Case("calibration-garbage", "main", MAIN, expect=["calibration.toml", "not valid TOML"],
         make=session(write("calibration.toml", "[[[ not toml"))),  # fmt: skip
    Case("calibration-three-cameras", "main", MAIN, expect=["calibration.toml", "3 camera"],
         make=session(write("calibration.toml", CALIBRATION_3))),  # fmt: skip
    Case("main-out-folder-missing", "main", [*MAIN[:4], "{tmp}/missing/o.npz", *MAIN[5:]], expect=["missing", "does not exist"],
         make=session()),  # fmt: skip
    # python -m recording
    Case("rec-folder-missing", "recording", ["keypoints", "{tmp}/nope", "--out", "{tmp}/o.npz"], expect=["nope", "not found"]),
    Case("rec-json-list", "recording", KEYPOINTS, expect=["session.json", "list"], make=session(write("session.json", "[]"))),
    Case("rec-cameras-empty", "recording", INFO, expect=["session.json", "cameras", "empty"], make=session(meta(cameras=[]))),
    Case("rec-chunks-garbage", "recording", KEYPOINTS, expect=["chunk_000000.npz", "no readable results"],
         make=session(garbage_chunks)),  # fmt: skip
    Case("rec-chunk-wrong-views", "recording", KEYPOINTS, expect=["chunk_000000.npz", "keypoints", "(4, 3, 17, 3)"],
         make=session(wrong_views_chunk)),  # fmt: skip
    Case("rec-no-results", "recording", KEYPOINTS, expect=["results/", "no results"], make=session(empty_results)),
    Case("rec-log-garbage", "recording", KEYPOINTS, expect=["chunk_000000.log", "no whole frame-set"],
         make=session(garbage_log_only)),  # fmt: skip
    Case("rec-out-folder-missing", "recording", ["keypoints", "{tmp}/s", "--out", "{tmp}/missing/o.npz"],
         expect=["--out", "missing", "does not exist"], make=session()),  # fmt: skip
    Case("rec-out-is-folder", "recording", ["keypoints", "{tmp}/s", "--out", "{tmp}/s"], expect=["--out", "is a folder"],
         make=session()),  # fmt: skip
    Case("rec-calibration-garbage", "recording", KEYPOINTS, expect=["calibration.toml"],
         make=session(write("calibration.toml", "[[[ not toml"), store_video=False)),  # fmt: skip
    Case("rec-calibration-three-cameras", "recording", KEYPOINTS, expect=["calibration.toml", "3 camera"],
         make=session(write("calibration.toml", CALIBRATION_3), store_video=False)),  # fmt: skip
    Case("rec-info-csv-missing", "recording", INFO, expect=["'left'", "left.csv"], make=session(remove("videos/left.csv"))),
    Case("rec-info-all-damaged", "recording", [*INFO, "--check"], expect=["'left'", "left.mjpeg", "damaged"],
         make=session(damage_all_frames)),  # fmt: skip
    Case("rec-info-json-folder-missing", "recording", [*INFO, "--json", "{tmp}/missing/i.json"],
         expect=["--json", "missing"], make=session()),  # fmt: skip
    Case("rec-no-command", "recording", [], expect=["command"]),
    Case("rec-unknown-command", "recording", ["replay", "{tmp}/s"], expect=["replay"]),
    Case("rec-keypoints-without-out", "recording", ["keypoints", "{tmp}/s"], expect=["--out"]),
]
# fmt: on


@parametrize(CASES)
def test_bad_input(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)
