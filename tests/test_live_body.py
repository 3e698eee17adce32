"""HeatFormer in the live pipeline: a standing person seen by four calibrated cameras (the fake
detector projects the body model's own keypoints), calibrated and uncalibrated."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.camera import Camera, looking_at, uncalibrated
from core.formats import results_arrays
from core.types import COCO17_MIRROR, BodyEstimate, Frame, FrameBody, FrameSet
from engine.body import BodyModel
from engine.body.render import display_mesh
from engine.detect.fake import FakeDetector
from engine.heatformer.inference import estimate_frame, estimate_frames
from engine.heatformer.live import LiveBody
from engine.pipeline import Pipeline
from training.synth.poses import _standing, rot_x, rot_z


def look_at(name: str, eye: tuple[float, float, float]) -> Camera:
    return looking_at(name, eye, (0.0, 0.0, 1.0), focal=500.0)


ROOM = [
    look_at("north", (0.3, 3.5, 2.3)),
    look_at("east", (3.5, -0.2, 2.3)),
    look_at("south", (-0.2, -3.5, 2.0)),
    look_at("west", (-3.5, 0.4, 2.6)),
]


@pytest.fixture(scope="module")
def person(model) -> dict[str, np.ndarray]:
    """A standing body (Z up, facing +Y turned 30 degrees), its world joints and keypoints."""
    body: BodyModel = model.body
    pose = _standing(1, torch.Generator().manual_seed(3))
    orient = rot_z(torch.tensor([math.radians(30)])) @ rot_x(torch.tensor([math.pi / 2]))  # body Y up -> world Z up
    from engine.body.lbs import axis_angle_to_matrix

    rotations = torch.cat([orient[:, None], axis_angle_to_matrix(pose)], dim=1)
    out = body.forward_rotmat(torch.zeros(1, 10), rotations)
    assert out.keypoints is not None and out.vertices is not None
    lift = 0.08 - float(out.vertices[0, :, 2].min())  # feet on the floor
    shift = np.array([0.2, -0.1, lift])
    return {
        "keypoints": out.keypoints[0].double().numpy() + shift,
        "joints": out.joints[0].double().numpy() + shift,
        "vertices": out.vertices[0].double().numpy() + shift,
    }


def frameset(cameras: list[Camera]) -> FrameSet:
    frames = {c.name: Frame(c.name, np.zeros((c.image_size[1], c.image_size[0], 3), np.uint8), 0.0, 0) for c in cameras}
    return FrameSet(frames, 0.0, 0)


def run_live(model, person, cameras: list[Camera], calibrated: bool, refine: bool = False) -> BodyEstimate:
    """One frame-set through the pipeline; HeatFormer's own answer unless ``refine``."""
    detector = FakeDetector(ROOM, person["keypoints"])  # projects with the true (calibrated) cameras
    pipeline = Pipeline(detector, cameras, body=LiveBody(model, cameras, calibrated, refine=refine))
    estimate = pipeline.process(frameset(cameras))
    pipeline.close()
    return estimate


def test_refined_body_sits_closer_to_the_person(model, person) -> None:
    """The refinement fits HeatFormer's body to the (here exact) keypoints of every view: the
    joints and the keypoints' reprojection come closer than HeatFormer's own answer."""
    raw, refined = (run_live(model, person, ROOM, calibrated=True, refine=r).body for r in (False, True))
    assert raw is not None and refined is not None and raw.fused and refined.fused

    def keypoints(frame: FrameBody) -> np.ndarray:
        with torch.no_grad():
            rot = torch.as_tensor(np.concatenate([frame.orient[None], frame.pose]), dtype=torch.float32)[None]
            out = model.body.joints_rotmat(torch.as_tensor(frame.betas, dtype=torch.float32)[None], rot)
        return out.keypoints[0].double().numpy() + frame.transl

    reprojection = {name: [] for name in ("raw", "refined")}
    for cam in ROOM:
        truth = cam.project(person["keypoints"])
        reprojection["raw"].append(np.linalg.norm(cam.project(keypoints(raw)) - truth, axis=1).mean())
        reprojection["refined"].append(np.linalg.norm(cam.project(keypoints(refined)) - truth, axis=1).mean())
    assert np.mean(reprojection["refined"]) < 0.6 * np.mean(reprojection["raw"]), reprojection
    error = {n: np.linalg.norm(f.joints - person["joints"], axis=1).mean() for n, f in (("raw", raw), ("refined", refined))}
    assert error["refined"] < error["raw"], error


def test_calibrated_room_gets_one_world_body_on_the_person(model, person) -> None:
    estimate = run_live(model, person, ROOM, calibrated=True)
    frame = estimate.body
    assert isinstance(frame, FrameBody) and frame.fused and frame.used.all()
    assert estimate.fused is not None and estimate.mesh3d is not None and "body" in estimate.timings_ms
    # The body's mid-hip sits on the triangulated one (exact keypoints: the true mid-hip).
    true_mid = 0.5 * (person["keypoints"][11] + person["keypoints"][12])
    with torch.no_grad():
        rot = torch.as_tensor(np.concatenate([frame.orient[None], frame.pose]), dtype=torch.float32)[None]
        out = model.body.joints_rotmat(torch.as_tensor(frame.betas, dtype=torch.float32)[None], rot)
    mid = 0.5 * (out.keypoints[0, 11] + out.keypoints[0, 12]).double().numpy() + frame.transl
    assert np.allclose(mid, true_mid, atol=1e-4)
    # Upright and roughly the right body: joints within 12 cm on average, head above the feet.
    error = np.linalg.norm(frame.joints - person["joints"], axis=1).mean()
    assert error < 0.12, error
    assert frame.joints[15, 2] - frame.joints[[7, 8], 2].min() > 1.2
    # The 3D viewport and every view show the display mesh: each view's is the world's projected by that camera.
    coarse = display_mesh(6890)
    assert coarse is not None and estimate.mesh3d.shape == (len(coarse[0]), 3)
    assert np.array_equal(estimate.mesh_faces, coarse[1])
    for cam in ROOM:
        view = estimate.views[cam.name]
        assert np.allclose(view.mesh_px, cam.project(estimate.mesh3d), atol=1e-6)
        assert (view.mesh_cam[:, 2] > 0).all()
        # ... and covers the person: the projected keypoints fall inside the mesh's box.
        kp = cam.project(person["keypoints"])
        lo, hi = view.mesh_px.min(axis=0), view.mesh_px.max(axis=0)
        margin = 0.1 * (hi - lo)
        inside = np.all((kp >= lo - margin) & (kp <= hi + margin), axis=1)
        assert inside.mean() >= 15 / 17, (cam.name, inside)


@pytest.mark.slow
def test_uncalibrated_views_get_their_own_body_sharing_pose(model, person) -> None:
    cams = [uncalibrated(c.name, c.image_size) for c in ROOM]
    estimate = run_live(model, person, cams, calibrated=False)
    frame = estimate.body
    assert isinstance(frame, FrameBody) and frame.valid and not frame.fused
    assert estimate.fused is None and estimate.keypoints3d is None
    assert np.allclose(frame.view_pose, frame.view_pose[:1], atol=1e-5)  # one pose for the person
    for cam in ROOM:
        view = estimate.views[cam.name]
        kp = cam.project(person["keypoints"])
        lo, hi = view.mesh_px.min(axis=0), view.mesh_px.max(axis=0)
        klo, khi = kp.min(axis=0), kp.max(axis=0)
        overlap = np.prod(np.clip(np.minimum(hi, khi) - np.maximum(lo, klo), 0, None))
        union = np.prod(hi - lo) + np.prod(khi - klo) - overlap
        assert overlap / union > 0.5, cam.name  # the weak-perspective mesh lands on the person
    # The 3D viewport shows the first view's body standing on the floor, feet at z = 0.
    assert estimate.mesh3d is not None and estimate.mesh3d[:, 2].min() == pytest.approx(0.0, abs=1e-9)
    assert 1.4 < np.ptp(estimate.mesh3d[:, 2]) < 2.2


@pytest.mark.slow
def test_views_without_a_person_are_left_out(model, person) -> None:
    keypoints = np.stack([np.hstack([c.project(person["keypoints"]), np.full((17, 1), 0.9)]) for c in ROOM])
    keypoints[2] = 0.0  # nobody in the south camera
    K, R, t = (np.stack([getattr(c, a) for c in ROOM]) for a in ("K", "R", "t"))
    frame = estimate_frame(model, keypoints, K, R, t)
    assert frame.used.tolist() == [True, True, False, True] and frame.fused
    empty = estimate_frame(model, np.zeros((4, 17, 3)), K, R, t)
    assert not empty.valid and not empty.fused
    arrays = results_arrays([frame, empty], np.array([0.0, 0.1]), [c.name for c in ROOM])
    assert arrays["valid"].tolist() == [True, False] and arrays["fused"].tolist() == [True, False]
    assert np.isfinite(arrays["joints"][0]).all() and np.isnan(arrays["joints"][1]).all()
    assert arrays["view_valid"].tolist() == [[True, True, False, True], [False] * 4]
    assert arrays["view_body_pose"].shape == (2, 4, 23, 3) and arrays["global_orient"].shape == (2, 3)


@pytest.mark.slow
@pytest.mark.parametrize("runner_name", ["torch", "onnxruntime"])
def test_several_people_go_through_heatformer_in_one_call_with_the_same_answers(model, person, runner_name) -> None:
    """estimate_frames batches the people that use the same views (one backend call for the two
    seen by all four cameras, one for the one seen by three) and gives each the answer
    estimate_frame gives them alone; nobody seen gets an empty body."""
    from engine.backends import HeatFormerRunner

    K, R, t = (np.stack([getattr(c, a) for c in ROOM]) for a in ("K", "R", "t"))

    def seen(shift: tuple[float, float, float]) -> np.ndarray:
        points = person["keypoints"] + np.array(shift)
        return np.stack([np.hstack([c.project(points), np.full((17, 1), 0.9)]) for c in ROOM])

    people = [seen((0.0, 0.0, 0.0)), seen((1.0, 0.6, 0.0)), seen((-0.8, 0.3, 0.0)), np.zeros((4, 17, 3))]
    people[2][1] = 0.0  # the third person is hidden from the east camera
    runner = None if runner_name == "torch" else HeatFormerRunner.create("onnxruntime", model, "test-batch")
    calls: list[int] = []

    def counted(inputs, iterations=None):
        calls.append(int(inputs.obs_xy.shape[0]))
        return runner(inputs, iterations) if runner is not None else _torch_final(model, inputs)

    together = estimate_frames(model, people, K, R, t, roots=[None] * 4, runner=counted)
    assert sorted(calls) == [1, 2]  # [0, 1] together, [2] alone, nobody for the empty one
    for frame, keypoints in zip(together, people, strict=True):
        alone = estimate_frame(model, keypoints, K, R, t, runner=runner)
        assert frame.fused == alone.fused and frame.used.tolist() == alone.used.tolist()
        if alone.fused:
            np.testing.assert_allclose(frame.joints, alone.joints, atol=1e-5)
            np.testing.assert_allclose(frame.pose, alone.pose, atol=1e-5)
            np.testing.assert_allclose(frame.betas, alone.betas, atol=1e-5)
    assert together[1].joints[0] - together[0].joints[0] == pytest.approx([1.0, 0.6, 0.0], abs=0.08)
    assert not together[3].valid


@pytest.mark.parametrize("refine", [True, False])
def test_heatformer_runs_fewer_iterations_where_the_refinement_follows(model, person, refine: bool) -> None:
    """Calibrated and refined, the fit decides: HeatFormer runs REFINED_ITERATIONS; without the
    refinement its answer is the body, after all its iterations."""
    from engine.heatformer.inference import REFINED_ITERATIONS

    asked: list[int | None] = []

    def runner(inputs, iterations=None):
        asked.append(iterations)
        return _torch_final(model, inputs, iterations)

    pipeline = Pipeline(FakeDetector(ROOM, person["keypoints"]), ROOM, body=LiveBody(model, ROOM, True, runner, refine=refine))
    frame = pipeline.process(frameset(ROOM)).body
    pipeline.close()
    assert asked == [REFINED_ITERATIONS if refine else None] and frame is not None and frame.fused
    # measured 2.6 and 7.6 mm: one iteration and the fit sit closer than three iterations alone
    assert np.linalg.norm(frame.joints - person["joints"], axis=1).mean() < (0.005 if refine else 0.015)


def _torch_final(model, inputs, iterations=None) -> dict[str, np.ndarray]:
    with torch.no_grad():
        state = model(inputs, iterations)[-1]
    return {"orient": state.orient.numpy(), "pose": state.pose.numpy(), "betas": state.betas.numpy(), "cam": state.cam.numpy()}


@pytest.mark.slow
def test_uncalibrated_views_fitted_through_their_lens_come_closer_to_the_body(model, person) -> None:
    """estimate_frame without cameras, refined: each view's body (in that camera, mid-hip-relative)
    nearer the true one than HeatFormer's answer, with one view and with four; it needs the sizes."""
    from engine.heatformer.inference import refine_bodies

    keypoints = np.stack([np.hstack([c.project(person["keypoints"]), np.full((17, 1), 0.9)]) for c in ROOM])
    sizes = np.array([c.image_size for c in ROOM], np.float64)
    body: BodyModel = model.body

    def error_mm(frame: FrameBody, views: list[int]) -> float:
        rot = torch.as_tensor(np.concatenate([frame.view_orient[views, None], frame.view_pose[views]], 1), dtype=torch.float32)
        kp = body.joints_rotmat(torch.as_tensor(frame.view_betas[views], dtype=torch.float32), rot).keypoints.double().numpy()
        errors = []
        for k, v in enumerate(views):
            truth = person["keypoints"] @ ROOM[v].R.T + ROOM[v].t
            errors.append(np.linalg.norm((kp[k] - kp[k, 11:13].mean(0)) - (truth - truth[11:13].mean(0)), axis=1).mean())
        return 1000 * float(np.mean(errors))

    for views in ([1], [0, 1, 2, 3]):
        seen = np.zeros_like(keypoints)
        seen[views] = keypoints[views]
        proposed = estimate_frame(model, seen)
        fitted = estimate_frame(model, seen, refine=True, image_size=sizes)
        assert proposed.view_lens is None and fitted.view_lens is not None and np.isfinite(fitted.view_lens[views]).all()
        before, after = error_mm(proposed, views), error_mm(fitted, views)
        assert after < (0.95 if len(views) == 1 else 0.5) * before, (views, before, after)  # 26 -> 25 and 27 -> 9 mm
    with pytest.raises(ValueError, match="image size"):
        refine_bodies(model, [estimate_frame(model, keypoints)], [keypoints])


def test_a_view_whose_detector_exchanged_left_and_right_is_fitted_and_shown_the_right_way(model, person) -> None:
    """Two cameras on opposite sides, the south one's detector giving the person's left as right
    (BlazePose does it to people it sees from behind). One other view cannot outvote it; the fit
    finds it by the body model, fits the body with it mirrored, and exchanges its keypoints back
    for the display and the files."""
    two = [ROOM[0], ROOM[2]]
    truth = {c.name: c.project(person["keypoints"]) for c in two}

    def run(impostors: dict[str, np.ndarray]) -> BodyEstimate:
        detector = FakeDetector(ROOM, person["keypoints"], impostors=impostors)
        pipeline = Pipeline(detector, two, body=LiveBody(model, two, True, refine=True))
        estimate = pipeline.process(frameset(two))
        pipeline.close()
        return estimate

    mirrored = run({"south": person["keypoints"][COCO17_MIRROR]})
    plain = run({})
    assert mirrored.body is not None and plain.body is not None
    assert mirrored.body.mirrored is not None and mirrored.body.mirrored.tolist() == [False, True]
    assert plain.body.mirrored is None
    for name, xy in truth.items():  # the south view's keypoints are exchanged back: both sit on their true places
        assert np.allclose(mirrored.keypoints2d[name].points[:, :2], xy, atol=1e-3), name
    # ... and the 3D keypoints, triangulated from the mixed labels before, are triangulated again from them.
    assert mirrored.keypoints3d is not None and np.allclose(mirrored.keypoints3d[:, :3], person["keypoints"], atol=1e-3)
    assert max(mirrored.reprojection_px.values()) < 0.01
    # The body is the one the right labels give.
    error = np.linalg.norm(mirrored.body.joints - person["joints"], axis=1).mean()
    alone = np.linalg.norm(plain.body.joints - person["joints"], axis=1).mean()
    assert error < alone + 0.01, (error, alone)


def test_uncalibrated_the_view_with_left_and_right_exchanged_is_found_too(model, person) -> None:
    """The same two cameras, uncalibrated: the views' bodies share one pose, which the mirrored view
    would pull; the fit finds that view (by the body model) and exchanges its keypoints back."""
    two = [uncalibrated(c.name, c.image_size) for c in (ROOM[0], ROOM[2])]
    detector = FakeDetector(ROOM, person["keypoints"], impostors={"south": person["keypoints"][COCO17_MIRROR]})
    pipeline = Pipeline(detector, two, body=LiveBody(model, two, False, refine=True))
    estimate = pipeline.process(frameset(two))
    pipeline.close()
    assert estimate.body is not None and estimate.body.mirrored is not None
    assert estimate.body.mirrored.tolist() == [False, True]
    truth = ROOM[2].project(person["keypoints"])
    assert np.allclose(estimate.keypoints2d["south"].points[:, :2], truth, atol=1e-3)
