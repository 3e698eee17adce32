"""Pipeline on synthetic frames with the fake detector: exact triangulation, subject choice."""

from __future__ import annotations

import numpy as np
import pytest

from capture.replay import SessionReplay
from capture.sources import SyntheticSource
from core import geometry
from core.camera import Camera, looking_at
from engine.detect.fake import STANDING_SKELETON, FakeDetector
from engine.pipeline import Pipeline, subject_box
from engine.runner import PipelineRunner, RunnerState


def look_at(name: str, eye: tuple[float, float, float], target=(0.0, 0.0, 0.9), size=(640, 480), f=600.0) -> Camera:
    return looking_at(name, eye, target, size, f)


@pytest.fixture
def room() -> list[Camera]:
    return [
        look_at("cam_1", (3.0, 0.0, 2.4)),
        look_at("cam_2", (0.0, 3.0, 2.4)),
        look_at("cam_3", (-3.0, 0.2, 1.2)),
        look_at("cam_10", (0.1, -3.5, 1.8)),
    ]


def replay_for(cameras: list[Camera], frames: int = 3) -> SessionReplay:
    return SessionReplay([SyntheticSource(c.name, c.image_size, frames) for c in cameras])


def test_look_at_camera_sees_target_at_centre(room: list[Camera]) -> None:
    for cam in room:
        assert np.allclose(cam.project(np.array([[0.0, 0.0, 0.9]])), [[320, 240]], atol=1e-9)
        assert np.allclose(geometry.rodrigues_to_matrix(cam.rvec), cam.R, atol=1e-12)


def test_pipeline_triangulates_exactly_and_publishes(room: list[Camera]) -> None:
    pipeline = Pipeline(FakeDetector(room), room)
    received = []
    pipeline.subscribe(received.append)
    estimates = [pipeline.process(fs) for fs in replay_for(room)]
    assert len(received) == 3 and received[-1] is estimates[-1]
    est = estimates[0]
    assert est.keypoints3d is not None
    assert np.allclose(est.keypoints3d[:, :3], STANDING_SKELETON, atol=1e-6)
    assert np.allclose(est.keypoints3d[:, 3], 0.9)
    assert max(est.reprojection_px.values()) < 1e-4
    for key in ("decode", "detect", "detect:cam_1", "detect:cam_10", "triangulate", "total"):
        assert est.timings_ms[key] >= 0
    pipeline.close()


def test_noisy_detections_triangulate_within_centimetres(room: list[Camera]) -> None:
    pipeline = Pipeline(FakeDetector(room, noise_px=1.5, seed=3), room)
    est = pipeline.process(next(iter(replay_for(room))))
    assert est.keypoints3d is not None
    err = np.linalg.norm(est.keypoints3d[:, :3] - STANDING_SKELETON, axis=1)
    assert np.median(err) < 0.02 and err.max() < 0.05  # 1.5 px at f=600, ~3.5 m: ~9 mm per view
    assert 0.5 < np.median(list(est.reprojection_px.values())) < 3.0
    pipeline.close()


def test_view_tracking_another_person_is_redirected_to_the_subject(room: list[Camera]) -> None:
    # cam_2's tracker follows a bystander 1.5 m to the side; the other views agree on the subject.
    bystander = STANDING_SKELETON + np.array([1.5, -1.0, 0.0])
    detector = FakeDetector(room, impostors={"cam_2": bystander})
    pipeline = Pipeline(detector, room)
    est = pipeline.process(next(iter(replay_for(room))))
    assert detector.region_calls == 1
    assert est.keypoints3d is not None
    assert np.allclose(est.keypoints3d[:, :3], STANDING_SKELETON, atol=1e-6)
    assert np.allclose(est.keypoints2d["cam_2"].points[:, :2], room[1].project(STANDING_SKELETON), atol=1e-6)
    pipeline.close()


def test_subject_box_contains_projection_with_margin(room: list[Camera]) -> None:
    points = np.hstack([STANDING_SKELETON, np.ones((17, 1))])
    box = subject_box(room[0], points)
    assert box is not None
    xy = room[0].project(STANDING_SKELETON)
    assert box[0] < xy[:, 0].min() and box[2] > xy[:, 0].max()
    assert box[1] < xy[:, 1].min() and box[3] > xy[:, 1].max()
    assert subject_box(room[0], np.full((17, 4), np.nan)) is None


def test_uncalibrated_views_get_no_3d(room: list[Camera]) -> None:
    from core.camera import uncalibrated

    cams = [uncalibrated(c.name, c.image_size) for c in room]
    pipeline = Pipeline(FakeDetector(room), cams)
    est = pipeline.process(next(iter(replay_for(room))))
    assert est.keypoints3d is None and "triangulate" not in est.timings_ms
    assert est.keypoints2d["cam_3"].found
    pipeline.close()


def test_runner_processes_all_sets_and_keeps_newest(room: list[Camera]) -> None:
    runner = PipelineRunner(replay_for(room, frames=12), Pipeline(FakeDetector(room), room))
    runner.start()
    assert runner.wait(10.0)
    assert runner.state == RunnerState.FINISHED and runner.processed == 12
    latest = runner.latest()
    assert latest is not None and latest.frameset.index == 11
    runner.pipeline.close()


def test_runner_reports_a_failing_source(room: list[Camera]) -> None:
    from capture.sources import VideoFileSource

    replay = SessionReplay([VideoFileSource("/nonexistent/cam.mp4", "cam_1")])
    runner = PipelineRunner(replay, Pipeline(FakeDetector(room), room))
    runner.start()
    assert runner.wait(5.0)
    assert runner.state == RunnerState.FAILED
    assert runner.error is not None and "/nonexistent/cam.mp4" in runner.error


def test_exchange_file_fills_a_camera_left_out_of_a_set(room: list[Camera], tmp_path) -> None:
    from core.formats import save_keypoints_npz
    from core.types import FrameSet

    pipeline = Pipeline(FakeDetector(room), room)
    full = next(iter(replay_for(room)))
    partial = FrameSet({n: f for n, f in full.frames.items() if n != "cam_3"}, full.reference_time + 0.1, 1)
    estimates = [pipeline.process(full), pipeline.process(partial)]
    save_keypoints_npz(tmp_path / "k.npz", estimates, room)
    data = np.load(tmp_path / "k.npz")
    assert data["keypoints"].shape == (2, 4, 17, 3)
    assert np.all(data["keypoints"][1, 2] == 0) and np.all(data["keypoints"][0, 2, :, 2] == np.float32(0.9))
    assert np.allclose(data["keypoints3d"][1, :, :3], STANDING_SKELETON, atol=1e-5)  # three views still agree
    pipeline.close()


def test_keypoints_exchange_round_trip_and_errors(room: list[Camera], tmp_path) -> None:
    import pytest

    from core.formats import ExchangeFileError, load_keypoints_npz, save_keypoints_npz

    pipeline = Pipeline(FakeDetector(room, noise_px=0.5, seed=2), room)
    estimates = [pipeline.process(fs) for fs in replay_for(room, frames=3)]
    save_keypoints_npz(tmp_path / "k.npz", estimates, room)
    back = load_keypoints_npz(tmp_path / "k.npz")
    assert back.calibrated and back.camera_names == ["cam_1", "cam_2", "cam_3", "cam_10"]
    assert np.array_equal(back.keypoints[2, 1], estimates[2].keypoints2d["cam_2"].points)
    assert np.allclose(back.K, np.stack([c.K for c in room])) and np.allclose(back.t, np.stack([c.t for c in room]))
    assert np.allclose(back.timestamps, [e.timestamp for e in estimates])
    np.savez(tmp_path / "bad.npz", keypoints=np.zeros((3, 2, 18, 3)))
    with pytest.raises(ExchangeFileError, match=r"bad\.npz: field keypoints has shape \(3, 2, 18, 3\)"):
        load_keypoints_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", keypoints=np.zeros((3, 2, 17, 3)), K=np.zeros((2, 3, 3)))
    with pytest.raises(ExchangeFileError, match="not all of K, R, t"):
        load_keypoints_npz(tmp_path / "partial.npz")
    pipeline.close()


def test_build_pipeline_checks_model_files_before_heavy_work(room: list[Camera], tmp_path, monkeypatch) -> None:
    """A bad --model is found before the body model loads, a bad --body-model before HeatFormer
    is built, and neither makes a detector or a backend."""
    import time

    import torch

    import engine.detect
    from engine.body import BodyModel
    from engine.body.model_file import BodyModelError
    from engine.heatformer.runtime import ModelFileError
    from engine.pipeline import build_pipeline

    def must_not_run(*args, **kwargs):
        raise AssertionError("called before the model files were checked")

    monkeypatch.setattr(engine.detect, "create_detector", must_not_run)
    torch.save({"model": {}, "model_config": {"width": "wide"}}, tmp_path / "w.pt")
    with monkeypatch.context() as m:
        m.setattr(BodyModel, "from_file", must_not_run)
        start = time.perf_counter()
        with pytest.raises(ModelFileError, match=r"w\.pt: model_config\.width"):
            build_pipeline(room, "fake", weights=tmp_path / "w.pt")
        assert time.perf_counter() - start < 2.0
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04 truncated")
    with monkeypatch.context() as m:
        m.setattr("engine.heatformer.runtime.HeatFormer", must_not_run)
        with pytest.raises(BodyModelError, match=r"b\.npz: not a readable \.npz"):
            build_pipeline(room, "fake", body_model=tmp_path / "b.npz")
        with pytest.raises(BodyModelError, match=r"b\.npz"):
            build_pipeline(room, "fake", body_model=tmp_path / "b.npz", with_body=False)


@pytest.mark.parametrize("refine", [True, False])
def test_the_graph_the_refinement_starts_from_is_made_when_the_pipeline_is(room: list[Camera], tmp_path, monkeypatch,
                                                                            refine: bool) -> None:  # fmt: skip
    """With the refinement on, HeatFormer's one-iteration graph is exported and loaded with the
    pipeline (the first frame-set's body does not wait for it); without it, only the whole model's."""
    from engine.heatformer.inference import REFINED_ITERATIONS
    from engine.pipeline import build_pipeline

    monkeypatch.setenv("ROOM_CAPTURE_CACHE", str(tmp_path))
    pipeline = build_pipeline(room, "fake", backend="onnxruntime", refine=refine)
    runner = pipeline.body.runner if pipeline.body is not None else None
    assert runner is not None
    made = set(runner._backends)
    pipeline.close()
    assert made == ({(True, None), (True, REFINED_ITERATIONS)} if refine else {(True, None)})
    assert (tmp_path / f"heatformer_{runner.model_id}_calibrated_{REFINED_ITERATIONS}it.onnx").is_file() == refine


def test_evaluate_json_writes_the_file_and_prints_a_summary(tmp_path, capsys) -> None:
    import json

    from core.report import run_and_report as report
    from training.evaluate import benchmark_summary

    setting = {"views": 4, "mode": "calibrated", "occlusion": 0.15, "speedup": 9.5,
               "heatformer": {"per_iteration": [{"pa_mpjpe_mm": 80.0}, {"pa_mpjpe_mm": 41.3}]},
               "baseline": {"pa_mpjpe_mm": 45.1}}  # fmt: skip
    result = {"weights": "bundled", "backend": "torch", "results": [setting] * 30}
    path = tmp_path / "eval.json"
    assert report(lambda: result, path, benchmark_summary) == 0
    shown = capsys.readouterr().out
    assert json.loads(path.read_text()) == result
    assert "30 settings" in shown and "4 view(s) calibrated" in shown and "PA-MPJPE 41.3 mm (baseline 45.1)" in shown
    assert f"wrote {path}" in shown and "per_iteration" not in shown and len(shown.splitlines()) == 32
    assert report(lambda: result, None, benchmark_summary) == 0  # no file: the whole JSON on the screen
    assert json.loads(capsys.readouterr().out) == result


def test_report_json_that_cannot_be_written_prints_the_result_and_one_error_line(tmp_path, capsys) -> None:
    import json

    from core.report import run_and_report as report

    (tmp_path / "f.txt").write_text("a file")
    assert report(lambda: {"sets": 3}, tmp_path / "f.txt" / "r.json") == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"sets": 3}  # the measurement is not lost
    assert captured.err.startswith(f"error: --json {tmp_path / 'f.txt' / 'r.json'}: cannot write (")
    assert len(captured.err.splitlines()) == 1
