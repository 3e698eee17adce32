"""The real-data benchmark (python -m engine.evaluate --benchmark pose2sim): its measures on known
values, its command line, and a short run on the bundled demo."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core.camera import looking_at
from core.types import FrameBody
from engine import evaluate, realbench
from engine.body.lbs import axis_angle_to_matrix
from engine.body.metrics import pa_mpjpe
from engine.heatformer.runtime import load_heatformer
from engine.realbench import Bodies

EYES = {"a": (3.0, 0.0, 1.5), "b": (0.0, 3.0, 1.5), "c": (-3.0, 0.0, 1.5), "d": (0.0, -3.0, 1.5)}


def skeleton(frames: int = 5) -> np.ndarray:
    """COCO-17 points ``[T, 17, 3]`` walking along x, 1 cm per frame, around the room's centre."""
    rng = np.random.default_rng(0)
    base = rng.uniform([-0.3, -0.2, 0.1], [0.3, 0.2, 1.7], size=(17, 3))
    return base + np.array([0.01, 0.0, 0.0]) * np.arange(frames)[:, None, None]


def test_triangulation_held_out_reprojects_exactly_and_misses_count() -> None:
    cams = [looking_at(n, eye, size=(1080, 1920), focal=1600.0) for n, eye in EYES.items()]
    points = skeleton()
    keypoints = np.stack([np.concatenate([c.project(points), np.ones((5, 17, 1))], axis=-1) for c in cams], axis=1)
    tri = realbench.triangulated(cams[1:], keypoints[:, 1:])
    shifted = Bodies(tri[..., :3] + [0.0, 0.0, 0.01])  # 1 cm up: a few px off in camera a
    errors = realbench.held_out_errors(cams[0], keypoints[:, 0], {"triangulation": Bodies(tri[..., :3]), "heatformer": shifted})
    assert errors["compared_keypoints"] == 5 * 17
    assert errors["triangulation"]["median"] < 1e-3
    assert 1.0 < errors["heatformer"]["median"] < 20.0
    assert errors["refined"] is None and errors["filtered"] is None
    keypoints[:, 0, :3, 2] = 0.2  # unsure held-out detections are not compared
    unsure = realbench.held_out_errors(cams[0], keypoints[:, 0], {"triangulation": Bodies(tri[..., :3])})
    assert unsure["compared_keypoints"] == 5 * 14


def test_bone_spread_and_jitter_on_known_motion() -> None:
    points = skeleton(120)
    times = np.arange(120) / 60.0
    spreads = realbench.bone_spreads(points, times)  # a rigid translation: every limb keeps its length
    assert set(spreads) == set(realbench.LIMBS)
    assert all(v["spread_cm"] < 1e-6 and v["spread_settled_cm"] < 1e-6 for v in spreads.values())
    assert realbench.jitter_mm(points)["mean"] == pytest.approx(0.0, abs=1e-6)  # constant velocity
    wobbly = points.copy()
    wobbly[::2, 9] += [0.0, 0.0, 0.002]  # the left wrist 2 mm up every other frame: 4 mm/frame^2 on one joint in 17
    assert realbench.jitter_mm(wobbly)["mean"] == pytest.approx(4.0 / 17, abs=1e-3)  # rounded to um
    forearm = points[0, 9] - points[0, 7]
    stretched = points.copy()
    stretched[::2, 9] += 0.01 * forearm / np.linalg.norm(forearm)  # 1 cm longer every other frame: 0.5 cm spread
    assert realbench.bone_spreads(stretched, times)["forearm_left"]["spread_cm"] == pytest.approx(0.5, abs=1e-3)


def test_command_line_rejects_unknown_benchmarks_and_strays(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expect in ((["--benchmark", "synthetic"], "training.evaluate"), (["--benchmark", "nope"], "pose2sim"),
                         (["--benchmark", "pose2sim", "--frames", "2"], "at least 3"),
                         (["--benchmark", "pose2sim", "--keypoints", "x.npz"], "--keypoints"),
                         (["--frames", "5", "--keypoints", "x.npz", "--out", "o.npz"], "--benchmark pose2sim")):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            evaluate.main(argv)
        assert exc.value.code == 2
        assert expect in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("realbench") / "rb.json"
    assert evaluate.main(["--benchmark", "pose2sim", "--frames", "12", "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_demo_held_out_errors_are_plausible_pixels(demo_run: dict) -> None:
    assert demo_run["frames"] == 12 and demo_run["cameras"] == ["cam01", "cam02", "cam03", "cam04"]
    for cam, r in demo_run["held_out_px"].items():
        assert r["compared_keypoints"] >= 12 * 8, cam  # most of the body compared in every frame
        for method in ("triangulation", "heatformer"):
            median = r[method]["median"]
            assert math.isfinite(median) and 3.0 < median < 60.0, (cam, method, median)
            assert r[method]["median"] <= r[method]["p90"] and r[method]["n"] == r["compared_keypoints"]
            by_keypoint = r[method]["median_by_keypoint"]
            assert len(by_keypoint) == 17 and by_keypoint["left_hip"] is not None, (cam, method)
    assert {"detect", "triangulation", "heatformer"} <= set(demo_run["seconds_per_stage"])


@pytest.mark.slow
def test_demo_refinement_and_filter_are_measured(demo_run: dict) -> None:
    for method in ("refined", "filtered"):
        for cam, r in demo_run["held_out_px"].items():
            assert 0.0 < r[method]["median"] < 60.0, (cam, method)
            assert r[method]["n"] == r["compared_keypoints"], (cam, method)
    assert set(demo_run["acceptance"]) >= {"refined_beats_triangulation_every_camera", "bone_spread_settled_ok", "filter_ok"}
    # The bodies' keypoints are placed where BlazePose marks them (engine.heatformer.offsets).
    assert demo_run["keypoint_offsets"] == "assets/body/blazepose_keypoint_offsets.json"


@pytest.mark.slow
def test_demo_bones_jitter_and_feet_are_measured(demo_run: dict) -> None:
    for method, limbs in demo_run["bone_spread"].items():
        assert set(limbs) == set(realbench.LIMBS)
        for limb, v in limbs.items():
            assert v["spread_cm"] is not None and 0.0 <= v["spread_cm"] < 10.0, (method, limb)
            assert 8.0 < v["mean_cm"] < 70.0, (method, limb, v["mean_cm"])  # a human limb, in cm
    for method, jitter in demo_run["jitter_mm_per_frame2"].items():
        assert jitter["mean"] is not None and 0.0 < jitter["mean"] < 100.0, method
    feet = demo_run["foot_floor"]["heatformer"]
    assert feet["standing_frames"] >= 6  # the person stands through the first frames
    assert 0.0 <= feet["distance_cm"]["median"] < 30.0


@pytest.mark.slow
def test_demo_summary_shows_every_camera_and_method(demo_run: dict) -> None:
    text = realbench.summary(demo_run)
    assert all(cam in text for cam in demo_run["cameras"])
    assert all(method in text for method in realbench.METHODS) and "n/a" not in text.split("bone spread")[0]


@pytest.mark.slow
def test_demo_one_camera_alone_is_scored_against_all_four(demo_run: dict) -> None:
    """Each camera alone, uncalibrated: its body (HeatFormer's and fitted) in every frame-set,
    against the four calibrated views' refined body; PA-MPJPE of a human body estimate (tens of
    mm, not 0: the views disagree; not metres). On the real demo the fit brings the views' bodies
    closer to the four-view body than HeatFormer alone (all 100 frame-sets: 69.5 -> 62.0 mm)."""
    one = demo_run["one_view_pa_mm"]
    assert set(one) == {"reference", "all", *demo_run["cameras"]}
    for cam in demo_run["cameras"]:
        for method in ("heatformer", "fitted"):
            r = one[cam][method]
            assert r["n"] == 12 and 20.0 < r["median"] < 200.0 and r["median"] <= r["p90"], (cam, method, r)
    assert one["all"]["heatformer"]["n"] == one["all"]["fitted"]["n"] == 48
    assert one["all"]["fitted"]["median"] < one["all"]["heatformer"]["median"]
    assert "one camera alone" in realbench.summary(demo_run)


def test_view_bodies_are_compared_whatever_their_camera_and_scale() -> None:
    """``view_joints``: a view's body is its world body turned into the camera; Procrustes takes
    the turn away (0 mm), a bent elbow it cannot (more than 5 mm, at most the move's RMS); frames
    without a world body or without the view give NaN rows."""
    model = load_heatformer()
    orient = axis_angle_to_matrix(torch.tensor([[0.3, -1.2, 0.4]]))[0].double().numpy()
    camera = axis_angle_to_matrix(torch.tensor([[2.0, 0.5, -0.7]]))[0].double().numpy()
    pose = np.tile(np.eye(3), (23, 1, 1))
    bent = pose.copy()
    bent[17] = axis_angle_to_matrix(torch.tensor([[0.0, -1.0, 0.0]]))[0].double().numpy()  # left elbow, 1 rad more

    def frame(view_pose: np.ndarray, fused: bool = True, used: bool = True) -> FrameBody:
        f = FrameBody.empty(1)
        f.view_orient, f.view_pose, f.used = (camera @ orient)[None], view_pose[None], np.array([used])
        if fused:
            f.orient, f.pose, f.betas, f.transl = orient, pose, np.zeros(10), np.array([0.5, -1.0, 0.9])
        return f

    frames = [frame(pose), frame(bent), frame(pose, fused=False), frame(pose, used=False)]
    world, view = realbench.view_joints(model, frames), realbench.view_joints(model, frames, view=0)
    assert torch.isnan(world[2]).all() and torch.isfinite(world[[0, 1, 3]]).all()
    assert torch.isnan(view[3]).all() and torch.isfinite(view[:3]).all()
    errors = pa_mpjpe(view[:2].double(), world[:2].double())
    assert float(errors[0]) < 1e-5
    # The bent elbow moves the left wrist and hand only. Leaving the body as it is is one of the
    # transforms Procrustes weighs, so its squared error is at most the move's: mean <= RMS of the move.
    moved = (view[1] - view[0]).norm(dim=-1)
    assert float(moved[[20, 22]].min()) > 0.1 and float(moved[:20].max()) < 1e-6
    assert 0.005 < float(errors[1]) <= float(moved.square().mean().sqrt()) + 1e-6, (float(errors[1]), moved)
