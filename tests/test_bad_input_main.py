"""Bad input on main.py's own flags and paths: each case exits 2 with one ``error:`` line naming the
flag or file, before any model loads or any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.badinput import Case, check_case, parametrize, run_entry

OUT = ["--out", "{tmp}/o.npz"]
HEADLESS = ["--headless", *OUT]


def _mkdir(*names: str):
    def make(tmp: Path) -> None:
        for name in names:
            (tmp / name).mkdir(parents=True)

    return make


# A table, one case a line: the formatter leaves it as written.
# fmt: off
CASES = [
    # flags
    Case("frames-zero", "main", ["--headless", "--frames", "0", *OUT], expect=["--frames", "0"]),
    Case("frames-negative", "main", ["--headless", "--frames", "-1", *OUT], expect=["--frames", "-1"]),
    Case("frames-text", "main", ["--headless", "--frames", "ten", *OUT], expect=["--frames", "ten"]),
    Case("frames-float", "main", ["--headless", "--frames", "2.5", *OUT], expect=["--frames", "2.5"]),
    Case("headless-without-output", "main", ["--headless"], expect=["--headless", "--out", "--record"]),
    Case("no-video-without-record", "main", [*HEADLESS, "--no-video"], expect=["--no-video", "--record"]),
    Case("headless-with-screenshot", "main", [*HEADLESS, "--screenshot", "{tmp}/s.png"], expect=["--screenshot"]),
    Case("source-and-room", "main", [*HEADLESS, "--source", "{demo}", "--room", "{demo}/room.toml"],
         expect=["--source", "--room"]),
    Case("calibration-and-uncalibrated", "main", [*HEADLESS, "--calibration", "{demo}/calibration.toml", "--uncalibrated"],
         expect=["--calibration", "--uncalibrated"]),
    Case("headless-calibrate", "main", [*HEADLESS, "--calibrate", "{demo}/videos"], expect=["--headless", "--calibrate"]),
    Case("calibrate-record", "main", ["--calibrate", "{demo}/videos", "--record", "{tmp}/rec"],
         expect=["--calibrate", "--record"]),
    Case("board-without-calibrate", "main", [*HEADLESS, "--board", "{tmp}/board.toml"], expect=["--board", "--calibrate"]),
    Case("intrinsics-without-calibrate", "main", [*HEADLESS, "--intrinsics", "{demo}/calibration.toml"],
         expect=["--intrinsics", "--calibrate"]),
    Case("calibrate-with-calibration", "main", ["--calibrate", "{demo}/videos", "--calibration", "{demo}/calibration.toml"],
         expect=["--calibration", "--intrinsics"]),
    Case("unknown-flag", "main", [*HEADLESS, "--fast"], expect=["--fast"]),
    Case("unknown-detector", "main", [*HEADLESS, "--detector", "nope"], expect=["--detector", "nope", "blazepose"]),
    Case("unknown-detector-gui", "main", ["--detector", "openpose"], expect=["--detector", "openpose"]),
    Case("unknown-backend", "main", [*HEADLESS, "--backend", "cuda"], expect=["--backend", "cuda"]),
    Case("unknown-overlay", "main", ["--overlay", "wireframe"], expect=["--overlay", "wireframe"]),
    # sources (found before the models load)
    Case("missing-source-file", "main", [*HEADLESS, "--source", "{tmp}/nothing.mp4"], expect=["nothing.mp4", "no such"]),
    Case("missing-source-folder", "main", [*HEADLESS, "--source", "{tmp}/no_folder"], expect=["no_folder", "no such file"]),
    Case("empty-source-folder", "main", [*HEADLESS, "--source", "{tmp}/empty"], expect=["empty", "no video"],
         make=_mkdir("empty")),
    Case("text-file-as-video", "main", [*HEADLESS, "--source", "{tmp}/notes.txt"], expect=["notes.txt", "unknown source type"],
         files={"notes.txt": "not a video"}),
    Case("zero-byte-video", "main", [*HEADLESS, "--source", "{tmp}/cam1.mp4"], expect=["cam1.mp4", "0 bytes"],
         files={"cam1.mp4": b""}),
    Case("garbage-video", "main", [*HEADLESS, "--source", "{tmp}/cam1.mp4"], expect=["cam1.mp4", "cannot open"],
         files={"cam1.mp4": b"\x00\x01garbage" * 500}),
    Case("folder-of-text-files", "main", [*HEADLESS, "--source", "{tmp}/videos"], expect=["videos", "no video files"],
         files={"videos/readme.txt": "hello"}),
    # input files named by flags
    Case("missing-calibration", "main", [*HEADLESS, "--calibration", "{tmp}/none.toml"], expect=["--calibration", "none.toml"]),
    Case("calibration-is-folder", "main", [*HEADLESS, "--calibration", "{tmp}"], expect=["--calibration", "folder"]),
    Case("missing-body-model", "main", [*HEADLESS, "--body-model", "{tmp}/body.npz"], expect=["--body-model", "body.npz"]),
    Case("missing-weights", "main", [*HEADLESS, "--model", "{tmp}/w.pt"], expect=["--model", "w.pt"]),
    Case("missing-room", "main", [*HEADLESS, "--room", "{tmp}/room.toml"], expect=["--room", "room.toml"]),
    Case("missing-board", "main", ["--calibrate", "{demo}/videos", "--board", "{tmp}/b.toml"], expect=["--board", "b.toml"]),
    Case("missing-intrinsics", "main", ["--calibrate", "{demo}/videos", "--intrinsics", "{tmp}/cams.toml"],
         expect=["--intrinsics", "cams.toml"]),
    Case("calibrate-missing-folder", "main", ["--calibrate", "{tmp}/calib"], expect=["--calibrate", "calib"]),
    # outputs: checked before any work
    Case("out-in-missing-folder", "main", ["--headless", "--out", "{tmp}/missing/o.npz"], expect=["--out", "missing"]),
    Case("out-is-a-folder", "main", ["--headless", "--out", "{tmp}/out.npz"], expect=["--out", "out.npz", "folder"],
         make=_mkdir("out.npz")),
    Case("out-under-a-file", "main", ["--headless", "--out", "{tmp}/f.txt/o.npz"], expect=["--out", "f.txt", "not a folder"],
         files={"f.txt": "x"}),
    Case("out-not-npz", "main", ["--headless", "--out", "{tmp}/o.csv"], expect=["--out", "o.csv", ".npz"]),
    Case("screenshot-in-missing-folder", "main", ["--screenshot", "{tmp}/nope/s.png", "--frames", "1"],
         expect=["--screenshot", "nope"]),
    Case("screenshot-is-a-folder", "main", ["--screenshot", "{tmp}/shots"], expect=["--screenshot", "shots", "folder"],
         make=_mkdir("shots")),
    Case("screenshot-unknown-format", "main", ["--screenshot", "{tmp}/s.txt"], expect=["--screenshot", "s.txt", ".png"]),
    Case("record-not-empty", "main", ["--headless", "--record", "{tmp}/rec"], expect=["recording folder", "rec", "not empty"],
         files={"rec/old.txt": "x"}),
    Case("record-is-a-file", "main", ["--headless", "--record", "{tmp}/rec"], expect=["recording folder", "rec", "is a file"],
         files={"rec": "x"}),
    Case("record-under-a-file", "main", ["--headless", "--record", "{tmp}/f.txt/a/rec"],
         expect=["recording folder", "f.txt", "is a file"], files={"f.txt": "x"}),
    Case("gui-record-not-empty", "main", ["--record", "{tmp}/rec"], expect=["rec", "not empty"], files={"rec/x": "x"}),
]
# fmt: on


@parametrize(CASES)
def test_bad_input(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("value", "expect"), [("1e12", "free"), ("lots", "not a number"), ("-5", "between")])
def test_record_free_space_is_checked_before_the_models_load(
    value: str, expect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$ROOM_CAPTURE_MIN_FREE_MB`` above the disk's free space (or not a size): refused at once, no folder left."""
    monkeypatch.setenv("ROOM_CAPTURE_MIN_FREE_MB", value)
    outcome = run_entry("main", ["--headless", "--record", str(tmp_path / "rec")])
    assert outcome.crashed is None and outcome.code == 2, outcome
    errors = [line for line in outcome.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, outcome.stderr
    assert expect in errors[0] and ("ROOM_CAPTURE_MIN_FREE_MB" in errors[0] or "rec" in errors[0]), errors
    assert not (tmp_path / "rec").exists()
