"""main.py from the command line: the demo acceptance figures and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.apprun import run_app as run_main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
LIMB_TOLERANCE_M = 0.15


@pytest.fixture(scope="module")
def demo_npz(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("headless") / "demo.npz"
    result = run_main("--headless", "--frames", "30", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return dict(np.load(out))


@pytest.mark.slow
def test_headless_writes_the_keypoints_exchange_format(demo_npz: dict[str, np.ndarray]) -> None:
    assert demo_npz["keypoints"].shape == (30, 4, 17, 3) and demo_npz["keypoints"].dtype == np.float32
    assert demo_npz["K"].shape == (4, 3, 3) and demo_npz["R"].shape == (4, 3, 3) and demo_npz["t"].shape == (4, 3)
    assert demo_npz["image_size"].tolist() == [[1080, 1920], [1080, 1920], [1088, 1920], [1088, 1920]]
    assert list(demo_npz["camera_names"]) == ["cam01", "cam02", "cam03", "cam04"]
    assert demo_npz["keypoints3d"].shape == (30, 17, 4)
    assert np.allclose(np.diff(demo_npz["timestamps"]), 1 / 60, atol=1e-6)


@pytest.mark.slow
def test_demo_triangulation_reprojects_within_20px(demo_npz: dict[str, np.ndarray]) -> None:
    """Reproject the written 3D joints with OpenCV (independent of our projection code)."""
    kp, k3d = demo_npz["keypoints"], demo_npz["keypoints3d"][..., :3]
    errors = []
    for v in range(4):
        rvec, _ = cv2.Rodrigues(demo_npz["R"][v].astype(np.float64))
        for t in range(len(kp)):
            ok = np.isfinite(k3d[t]).all(axis=1) & (kp[t, v, :, 2] >= 0.5)
            if ok.any():
                xy, _ = cv2.projectPoints(
                    k3d[t, ok].astype(np.float64),
                    rvec,
                    demo_npz["t"][v].astype(np.float64),
                    demo_npz["K"][v].astype(np.float64),
                    demo_npz["dist"][v].astype(np.float64),
                )
                errors.extend(np.linalg.norm(xy[:, 0] - kp[t, v, ok, :2], axis=1))
    assert len(errors) > 30 * 4 * 10
    assert np.median(errors) < 20.0


@pytest.mark.slow
def test_demo_lower_ankle_is_just_above_the_floor(demo_npz: dict[str, np.ndarray]) -> None:
    ankles = demo_npz["keypoints3d"][:, 15:17, 2]  # z of left and right ankle, metres
    lower = np.nanmin(ankles, axis=1)
    assert np.isfinite(lower).sum() >= 25
    assert 0.0 <= np.nanmedian(lower) <= 0.25
    # The head is well above the ankles (a standing person, Z up).
    assert np.nanmedian(demo_npz["keypoints3d"][:, 0, 2] - lower) > 1.2


# SMPL joint -> COCO keypoint for the limbs (shoulders, elbows, wrists, knees, ankles).
SMPL_TO_COCO = {16: 5, 17: 6, 18: 7, 19: 8, 20: 9, 21: 10, 4: 13, 5: 14, 7: 15, 8: 16}


@pytest.mark.slow
def test_headless_out_holds_the_body_results(demo_npz: dict[str, np.ndarray]) -> None:
    """HeatFormer's world body for every set, and its limb joints near the independently
    triangulated keypoints (on the real 4-camera recording)."""
    d = demo_npz
    assert d["global_orient"].shape == (30, 3) and d["body_pose"].shape == (30, 23, 3) and d["betas"].shape == (30, 10)
    assert d["transl"].shape == (30, 3) and d["joints"].shape == (30, 24, 3)
    assert d["view_body_pose"].shape == (30, 4, 23, 3) and d["view_cam"].shape == (30, 4, 3)
    tracked = d["people_ids"][:, 0] >= 0  # the first sets wait for the person's track to be confirmed
    assert tracked[3:].all() and d["valid"].tolist() == tracked.tolist() and d["fused"].tolist() == tracked.tolist()
    assert np.isfinite(d["joints"][tracked]).all() and np.isnan(d["joints"][~tracked]).all()
    errors = np.linalg.norm(d["joints"][:, list(SMPL_TO_COCO)] - d["keypoints3d"][:, list(SMPL_TO_COCO.values()), :3], axis=-1)
    assert np.nanmedian(errors) < LIMB_TOLERANCE_M, np.nanmedian(errors, axis=0)
    # The body's hip joints (SMPL 1, 2) around the triangulated hips: BlazePose marks its hips about
    # 4 cm below the model's hip joints (engine.heatformer.offsets), and measured 4.6-4.7 cm apart here
    # (the pelvis joint, 13 cm above BlazePose's hips by construction, is no measure of placement)
    mid_hip = 0.5 * (d["keypoints3d"][:, 11, :3] + d["keypoints3d"][:, 12, :3])
    hips = 0.5 * (d["joints"][:, 1] + d["joints"][:, 2])
    assert np.nanmedian(np.linalg.norm(hips - mid_hip, axis=-1)) < 0.08


def assert_one_clear_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_video_path(tmp_path: Path) -> None:
    missing = tmp_path / "nothing_here.mp4"
    assert_one_clear_error(
        run_main("--headless", "--out", str(tmp_path / "o.npz"), "--source", str(missing)), str(missing), "no such file"
    )


def test_video_with_no_frames(tmp_path: Path) -> None:
    empty = tmp_path / "cam1.mp4"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    writer.release()
    assert_one_clear_error(run_main("--headless", "--out", str(tmp_path / "o.npz"), "--source", str(empty)), str(empty))
    (tmp_path / "zero").mkdir()
    zero = tmp_path / "zero" / "cam2.mp4"
    zero.write_bytes(b"")
    assert_one_clear_error(run_main("--headless", "--out", str(tmp_path / "o.npz"), "--source", str(zero)), str(zero))


def test_calibration_missing_field(tmp_path: Path) -> None:
    text = (DEMO / "calibration.toml").read_text()
    head, cam1 = text.split("[cam_1]", 1)
    cam1 = "\n".join(line for line in cam1.splitlines() if not line.startswith("matrix"))
    bad = tmp_path / "calib.toml"
    bad.write_text(head + "[cam_1]" + cam1)
    result = run_main("--headless", "--out", str(tmp_path / "o.npz"), "--source", str(DEMO / "videos"), "--calibration", str(bad))
    assert_one_clear_error(result, str(bad), "cam_1", "matrix")


def test_calibration_with_wrong_camera_count(tmp_path: Path) -> None:
    text = (DEMO / "calibration.toml").read_text()
    bad = tmp_path / "three.toml"
    bad.write_text(text.split("[cam_3]")[0])
    result = run_main("--headless", "--out", str(tmp_path / "o.npz"), "--source", str(DEMO / "videos"), "--calibration", str(bad))
    assert_one_clear_error(result, str(bad), "3 camera", "4")


def test_unknown_source_and_detector(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    assert_one_clear_error(
        run_main("--headless", "--out", str(tmp_path / "o.npz"), "--source", str(notes)), str(notes), "unknown source type"
    )
    result = run_main("--headless", "--out", str(tmp_path / "o.npz"), "--detector", "nope")
    assert_one_clear_error(result, "unknown detector 'nope'")


def test_help_documents_every_mode() -> None:
    result = run_main("--help")
    assert result.returncode == 0
    for option in (
        "--source",
        "--calibration",
        "--headless",
        "--frames",
        "--out",
        "--screenshot",
        "--uncalibrated",
        "--detector",
    ):
        assert option in result.stdout


@pytest.mark.slow
def test_bad_body_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "body.npz"
    np.savez(bad, v_template=np.zeros((10, 3)))
    result = run_main("--headless", "--frames", "1", "--out", str(tmp_path / "o.npz"), "--body-model", str(bad))
    assert_one_clear_error(result, str(bad), "missing field(s)")


@pytest.mark.slow
def test_bad_model_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    result = run_main("--headless", "--frames", "1", "--out", str(tmp_path / "o.npz"), "--model", str(bad))
    assert_one_clear_error(result, str(bad), "cannot load")


def run_benchmark(out: Path, *args: str) -> dict:
    """``python -m engine.benchmark ARGS --json OUT``: its JSON (the run must succeed)."""
    import json

    cmd = [sys.executable, "-m", "engine.benchmark", *args, "--json", str(out)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.slow
def test_benchmark_writes_its_json_fields(tmp_path: Path) -> None:
    data = run_benchmark(tmp_path / "bench.json", "--frames", "4", "--warmup", "1", "--detector", "fake")
    assert data["frames"] == 4 and data["views"] == 4 and data["end_to_end_fps"] > 0
    for stage in ("decode", "detect", "detect:cam01", "detect:cam04", "associate", "total"):
        assert data["stages"][stage]["n"] == 4
        assert 0 <= data["stages"][stage]["median_ms"] <= data["stages"][stage]["p95_ms"]
    # the fake person's track is confirmed on the third set (one before the four measured): a body from then on
    assert data["stages"]["body"]["n"] == 3 and data["people_per_set"] == {"0": 1, "1": 3}
    latency = data["heatformer_4_views"]
    assert latency["views"] == 4 and latency["iterations"] == 3
    for backend in ("pytorch", "onnxruntime"):
        assert 0 < latency[backend]["median_ms"] <= latency[backend]["p95_ms"]


@pytest.mark.slow
def test_benchmark_runs_on_a_downscaled_copy_of_the_demo(tmp_path: Path) -> None:
    """``--max-side``: the demo's portrait videos as a copy 640 px high, calibration scaled to match
    (issue 27 compares the body stage's share on the demo and on such a copy); a source that is
    not a session folder is a clear error."""
    data = run_benchmark(tmp_path / "small.json", "--max-side", "640", "--frames", "3", "--warmup", "1",
                         "--detector", "fake", "--no-heatformer")  # fmt: skip
    assert data["source"] == "bundled demo downscaled to 640 px" and data["frames"] == 3
    from calibration.io import load_calibration
    from core.paths import DEMO_DIR

    cameras, _ = load_calibration(DEMO_DIR / "calibration.toml")
    for c in cameras:  # the longer side 640 px, the other as the camera's proportions give it (to a pixel: the video's own size)
        w, h = data["image_sizes"][c.name]
        assert h == 640 and abs(w - c.image_size[0] * 640 / c.image_size[1]) <= 1.5, (c.name, w, h, c.image_size)
    assert data["landmarks"] is None  # the fake detector has no landmark network
    video = tmp_path / "one.mp4"
    video.write_bytes(b"")
    cmd = [sys.executable, "-m", "engine.benchmark", "--max-side", "640", "--source", str(video), "--detector", "fake"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "needs a session folder" in result.stderr and "one.mp4" in result.stderr
    for args, said in (
        (["--max-side", "-3"], "--max-side must be 0 (full size) or more"),
        (["--max-side", "640", "--realtime", "5"], "not with --realtime or --views"),
        (["--max-side", "4000", "--detector", "fake"], "cam01.mp4 is only 1080x1920 px"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "engine.benchmark", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode != 0 and said in result.stderr, (args, result.stderr[-500:])


@pytest.mark.slow
def test_benchmark_body_share_pairs_runs_with_and_without_the_bodies(tmp_path: Path) -> None:
    """``--body-share 2``: two rounds, each a keypoints-only run then one with the bodies, in one
    process; what the bodies add is each round's keypoints-only rate over its with-bodies rate."""
    data = run_benchmark(tmp_path / "share.json", "--body-share", "2", "--frames", "4", "--warmup", "1", "--detector", "fake")
    share = data["body_share"]
    assert len(share["keypoints_only_fps"]) == len(share["with_bodies_fps"]) == len(share["added"]) == 2
    for without, with_bodies, added in zip(share["keypoints_only_fps"], share["with_bodies_fps"], share["added"], strict=True):
        assert without > 0 and with_bodies > 0 and added == pytest.approx(without / with_bodies - 1, abs=6e-4)
    assert share["added_median"] == pytest.approx(sum(share["added"]) / 2, abs=1e-3)
    # each run with the bodies says how many of the refinement's start-up traces its measured sets held
    assert [type(n) for n in share["refine_traces_measured"]] == [int, int]
    # the result is the last run with the bodies (its HeatFormer latency measured once, there)
    assert data["stages"]["body"]["n"] == 3 and data["heatformer_4_views"]["views"] == 4
    assert data["end_to_end_fps"] == share["with_bodies_fps"][-1]
    for args, said in (
        (["--body-share", "0"], "--body-share takes a number of rounds, at least 1"),
        (["--body-share", "2", "--no-heatformer"], "not with --no-heatformer, --realtime or --views"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "engine.benchmark", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode != 0 and said in result.stderr, (args, result.stderr[-500:])


@pytest.mark.slow
def test_benchmark_counts_the_refinements_traces_in_its_measured_sets(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A trace of the fit is start-up work: a run says how many were being made during its measured
    frame-sets (and that a longer warm-up measures the steady state). Here the fit is traced on its
    first call, on the body thread's helper, while the measured sets run."""
    import engine.benchmark as benchmark
    import engine.heatformer.refine as refine

    monkeypatch.setattr(refine, "_TRACE_TIMES", type(refine._TRACE_TIMES)(maxlen=8))
    refine._TRACE_TIMES.extend([[1.0, 2.0], [3.0, 4.0], [5.0, float("inf")]])  # the last one still being made
    assert [benchmark._traces_within(a, b) for a, b in ((0.0, 0.5), (0.0, 1.5), (2.5, 4.5), (4.2, 4.8), (6.0, 9.0))] == [
        0, 1, 1, 0, 1
    ]  # fmt: skip
    monkeypatch.setattr(refine, "_TRACE_TIMES", type(refine._TRACE_TIMES)(maxlen=8))
    monkeypatch.setattr(refine, "TRACE_AFTER", 1)
    result = benchmark.run(None, "fake", 12, 1, with_heatformer=True, latency=False)
    assert result["refine_traces_measured"] >= 1 and len(refine.trace_times()) >= 1
    assert "of the refinement's traces" in capsys.readouterr().err
    keypoints = benchmark.run(None, "fake", 3, 1, with_heatformer=False, latency=False)
    assert keypoints["refine_traces_measured"] == 0


@pytest.mark.slow
def test_benchmark_realtime_plays_the_demo_at_its_pace(tmp_path: Path) -> None:
    data = run_benchmark(tmp_path / "realtime.json", "--realtime", "4", "--detector", "fake", "--no-heatformer")
    assert data["recording_fps"] == 60.0 and data["views"] == 4 and data["seconds"] >= 4.0
    # paced: never faster than the recording, however light the work (the fake detector)
    assert 0 < data["processed_per_s"] <= 60.0 * 1.05
    assert data["processed"] == sum(data["people_per_set"].values()) > 10
    assert set(data["people_per_set"]) <= {"0", "1"} and data["people_per_set"]["1"] >= data["processed"] - 3


def test_version_names_the_app_and_the_bundled_model() -> None:
    import hashlib
    import tomllib

    result = run_main("--version", timeout=60)
    assert result.returncode == 0, result.stderr
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    digest = hashlib.sha256((ROOT / "assets" / "models" / "heatformer_s.pt").read_bytes()).hexdigest()[:16]
    assert result.stdout.startswith(f"main.py {version} ") and digest in result.stdout, result.stdout


def test_help_names_every_kind_of_source() -> None:
    text = run_main("--help", timeout=60).stdout
    for fragment in ("session:DIR", "--room", "rtsp://", "--version", "exit codes"):
        assert fragment in text, fragment


FAST = ("--detector", "fake", "--no-body")


@pytest.mark.slow
def test_ctrl_c_is_recorded_as_stopped_by_the_user(tmp_path: Path) -> None:
    import json
    import signal
    import time

    from recording.writer import STOP_INTERRUPTED

    folder = tmp_path / "rec"
    # Ctrl+C's default action in the child even when this suite runs in the background (a shell
    # starts background jobs with SIGINT ignored, and the child would inherit that)
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen([sys.executable, "main.py", "--headless", "--record", str(folder), *FAST], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((folder / "results").glob("chunk_*.npz")):
            time.sleep(0.2)
        assert list((folder / "results").glob("chunk_*.npz")), "the recording never wrote a results chunk"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "error:" not in err, err
    meta = json.loads((folder / "session.json").read_text())
    assert meta["stop_reason"] == STOP_INTERRUPTED and "Ctrl+C" in STOP_INTERRUPTED  # not "end of the source"
    assert "ended" in meta and meta["sets"] >= 1
    assert f"recorded {meta['sets']} frame-set(s)" in out


@pytest.mark.slow
def test_recording_stopped_by_an_error_exits_1_and_is_finalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up during the recording (the recorder's public ``disk_usage`` hook reports
    plenty of space twice, then none): one error line, exit code 1, session.json finished."""
    import json
    from types import SimpleNamespace

    from recording.writer import SessionRecorder
    from tests.badinput import run_entry

    original = SessionRecorder.__init__
    checks = {"n": 0}

    def full_later(path: str) -> SimpleNamespace:
        checks["n"] += 1
        return SimpleNamespace(free=0 if checks["n"] > 2 else 10**12)

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **{**kwargs, "disk_usage": full_later})

    monkeypatch.setattr(SessionRecorder, "__init__", init)
    folder = tmp_path / "rec"
    outcome = run_entry("main", ["--headless", "--record", str(folder), *FAST])
    assert outcome.crashed is None, outcome.crashed
    assert outcome.code == 1, outcome.stderr
    errors = [line for line in outcome.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "free" in errors[0], outcome.stderr
    meta = json.loads((folder / "session.json").read_text())
    assert "ended" in meta and "free" in meta["stop_reason"] and meta["sets"] >= 1
    assert checks["n"] >= 3


def test_headless_recording_keeps_nothing_per_frame_without_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --out no per-frame keypoints store exists (memory stays flat on long recordings)."""
    import core.formats
    from tests.badinput import run_entry

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a KeypointsRecorder was created without --out")

    monkeypatch.setattr(core.formats, "KeypointsRecorder", refuse)
    outcome = run_entry("main", ["--headless", "--record", str(tmp_path / "rec"), "--frames", "3", *FAST])
    assert outcome.crashed is None and outcome.code == 0, (outcome.crashed, outcome.stderr)
    assert "recorded" in outcome.stdout


@pytest.mark.slow
def test_headless_recording_of_a_file_source_waits_for_the_disk_instead_of_dropping(tmp_path: Path) -> None:
    """The fake detector processes the demo faster than four 1080x1920 JPEGs per set are encoded:
    a file source waits for the writer, so every processed set is recorded (a live camera drops)."""
    folder = tmp_path / "s"
    result = run_main("--headless", "--record", str(folder), "--frames", "80", "--detector", "fake", "--no-body")
    assert result.returncode == 0, result.stderr
    meta = json.loads((folder / "session.json").read_text())
    assert meta["sets"] == 80 and meta["dropped_sets"] == 0
    lines = (folder / "videos" / "cam03.csv").read_text().splitlines()
    assert len(lines) == 81  # header + one frame per set


def test_recording_ended_by_a_source_error_is_finalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source fails mid-recording (a room whose cameras all failed): one error line, exit 2,
    and session.json still finalised with the reason and the sets recorded before."""
    from capture.replay import SessionReplay
    from core.errors import SourceError
    from tests.badinput import run_entry

    original = SessionReplay.next
    calls = {"n": 0}

    def failing_next(self):
        calls["n"] += 1
        if calls["n"] > 5:
            raise SourceError("room file lab.toml: every camera failed: cam1 (rtsp://u:***@h/) failed")
        return original(self)

    monkeypatch.setattr(SessionReplay, "next", failing_next)
    folder = tmp_path / "rec"
    outcome = run_entry("main", ["--headless", "--record", str(folder), *FAST])
    assert outcome.crashed is None, outcome.crashed
    assert outcome.code == 2, outcome.stderr
    meta = json.loads((folder / "session.json").read_text())
    assert "ended" in meta and "every camera failed" in meta["stop_reason"] and meta["sets"] == 5
    assert not (folder / ".space_reserve").exists()
