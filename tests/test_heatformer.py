"""HeatFormer-S building blocks: heatmaps, inputs, view-order independence, ONNX, test-time augmentation
(the training lab's losses, metrics and configs: ``tests/test_training.py``)."""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from core.types import COCO17_LEFT_RIGHT
from engine.backends import HeatFormerRunner
from engine.body import BodyModel
from engine.body.lbs import axis_angle_to_matrix, matrix_to_rotation_6d, rotation_6d_to_matrix
from engine.heatformer.heatmaps import render_heatmaps
from engine.heatformer.inputs import ViewInputs, crop_boxes, triangulate_root
from engine.heatformer.model import Estimate, HeatFormer, HeatFormerConfig
from engine.heatformer.tta import AUGMENTATIONS, SMPL_LEFT_RIGHT, Augmentation, augmented_average, average
from training.synth.scene import NoiseModel, project, sample_scene

TINY = HeatFormerConfig(map_size=16, sigma=1.0, patch=4, width=32, heads=2, layers=1, iterations=2, keypoint_input=True)


def test_heatmap_values_by_hand() -> None:
    xy = torch.tensor([[[0.5, 0.5], [0.125, 0.875]]])
    conf = torch.tensor([[0.8, 1.0]])
    maps = render_heatmaps(xy, conf, size=4, sigma=1.0)
    assert maps.shape == (1, 2, 4, 4)
    g = [math.exp(-0.5 * 1.5**2), math.exp(-0.5 * 0.5**2)]  # pixel centres 1.5 and 0.5 map px away
    assert maps[0, 0, 1, 2].item() == pytest.approx(0.8 * g[1] * g[1], abs=1e-6)
    assert maps[0, 0, 0, 0].item() == pytest.approx(0.8 * g[0] * g[0], abs=1e-6)
    assert maps[0, 1, 3, 0].item() == pytest.approx(1.0, abs=1e-6)  # exactly on a pixel centre
    assert maps[0, 1, 0, 3].item() == pytest.approx(math.exp(-0.5 * 9) ** 2, abs=1e-9)
    assert torch.all(render_heatmaps(xy, torch.zeros(1, 2), 4, 1.0) == 0)


def test_heatmap_tails_hold_no_subnormal_floats() -> None:
    # keypoints anywhere (also off the crop), the model's map size: subnormal values make the CPU's
    # arithmetic on the maps many times slower; the tails beyond 7.4 sigma are exactly 0 instead
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(64, 17, 2, generator=g) * 1.6 - 0.3
    conf = torch.rand(64, 17, generator=g).clamp_min(1e-6)
    maps = render_heatmaps(xy, conf, size=32, sigma=1.0)
    assert not torch.any((maps != 0) & (maps.abs() < torch.finfo(torch.float32).tiny))
    centres = (torch.arange(32) + 0.5) / 32
    far = (centres - xy[0, 0, 0]).abs() * 32 > 7.5  # columns beyond the cut
    near = (centres - xy[0, 0, 0]).abs() * 32 < 7.3
    assert torch.all(maps[0, 0][:, far] == 0)
    peak_row = maps[0, 0].amax(dim=1).argmax()
    assert torch.all(maps[0, 0, peak_row, near] > 0)


def test_crop_box_is_square_around_the_seen_keypoints() -> None:
    obs = torch.zeros(1, 1, 17, 3)
    obs[0, 0, :3] = torch.tensor([[100.0, 200.0, 1.0], [300.0, 240.0, 0.9], [200.0, 600.0, 0.5]])
    obs[0, 0, 3] = torch.tensor([5000.0, 5000.0, 0.0])  # not seen: ignored
    box = crop_boxes(obs)[0, 0]
    assert box.tolist() == pytest.approx([200 - 250, 400 - 250, 500.0])  # side = 1.25 x 400 px


def test_root_triangulation_is_exact_without_noise(body: BodyModel) -> None:
    scene = sample_scene(body, 6, 3, torch.Generator().manual_seed(3), NoiseModel((0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 0.0))
    pix, _ = project(scene.keypoints3d, scene.K, scene.R, scene.t)
    observed = torch.cat([pix, torch.ones_like(pix[..., :1])], dim=-1)
    root, ok = triangulate_root(observed, scene.K, scene.R, scene.t)
    truth = 0.5 * (scene.keypoints3d[:, 11] + scene.keypoints3d[:, 12])
    assert ok.all()
    # The projected hip midpoint is not exactly the projection of the 3D midpoint (perspective).
    assert (root - truth).norm(dim=-1).max() < 0.006


def random_inputs(views: int, calibrated: bool, seed: int = 0) -> ViewInputs:
    g = torch.Generator().manual_seed(seed)
    xy = 0.2 + 0.6 * torch.rand(2, views, 17, 2, generator=g)
    conf = torch.rand(2, views, 17, generator=g)
    if not calibrated:
        return ViewInputs(xy, conf, torch.zeros(2, views, 3))
    K = torch.tensor([[1.4, 0.0, 0.5], [0.0, 1.4, 0.5], [0.0, 0.0, 1.0]]).repeat(2, views, 1, 1)
    root = torch.tensor([0.0, 0.0, 3.0]) + 0.2 * torch.randn(2, views, 3, generator=g)
    R = axis_angle_to_matrix(torch.randn(2, views, 3, generator=g))
    return ViewInputs(xy, conf, torch.zeros(2, views, 3), K, root, R)


def perturbed(body: BodyModel, cfg: HeatFormerConfig, seed: int = 0) -> HeatFormer:
    torch.manual_seed(seed)
    model = HeatFormer(body, cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))  # zero-initialised heads would hide view mixing
    return model


@pytest.mark.slow
@pytest.mark.parametrize("calibrated", [False, True])
def test_views_in_any_order_give_the_same_per_view_result(body: BodyModel, calibrated: bool) -> None:
    model = perturbed(body, TINY)
    inputs = random_inputs(4, calibrated)
    perm = torch.tensor([2, 0, 3, 1])
    shuffled = ViewInputs(
        *(
            None if x is None else x[:, perm]
            for x in (inputs.obs_xy, inputs.obs_conf, inputs.boxes, inputs.K_crop, inputs.root_cam, inputs.R)
        )
    )
    with torch.no_grad():
        a, b = model(inputs)[-1], model(shuffled)[-1]
    for name in ("orient", "pose", "betas", "cam", "keypoints2d", "joints"):
        assert torch.allclose(getattr(a, name)[:, perm], getattr(b, name), atol=1e-5), name
    with torch.no_grad():  # and the views do talk to each other: changing one view moves another
        changed = ViewInputs(inputs.obs_xy.clone(), inputs.obs_conf, inputs.boxes, inputs.K_crop, inputs.root_cam, inputs.R)
        changed.obs_xy[:, 3] += 0.1
        c = model(changed)[-1]
    assert not torch.allclose(a.pose[:, 0], c.pose[:, 0], atol=1e-6)


def test_views_agree_on_one_body(body: BodyModel) -> None:
    """Pose and shape are the same in every view; calibrated, so is the world orientation."""
    model = perturbed(body, TINY)
    for calibrated in (False, True):
        inputs = random_inputs(3, calibrated)
        with torch.no_grad():
            final = model(inputs)[-1]
        assert torch.allclose(final.pose, final.pose[:, :1].expand_as(final.pose), atol=1e-6)
        assert torch.allclose(final.betas, final.betas[:, :1].expand_as(final.betas), atol=1e-6)
        orient = rotation_6d_to_matrix(final.orient)
        if calibrated:
            world = inputs.R.transpose(-1, -2) @ orient
            assert torch.allclose(world, world[:, :1].expand_as(world), atol=1e-5)
        else:  # weak perspective: each view keeps its own orientation
            assert not torch.allclose(orient[:, 0], orient[:, 1], atol=1e-3)


@pytest.mark.slow
def test_onnx_export_matches_pytorch_for_1_2_4_views(body: BodyModel, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from engine.heatformer.export import OUTPUTS, export_onnx

    model = perturbed(body, TINY, seed=1)
    for calibrated in (False, True):
        path = tmp_path / f"hf_{calibrated}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(model, path, calibrated)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for views in (1, 2, 4):
            inputs = random_inputs(views, calibrated, seed=views)
            feed = {"obs_xy": inputs.obs_xy.numpy(), "obs_conf": inputs.obs_conf.numpy()}
            if calibrated:
                feed |= {"K_crop": inputs.K_crop.numpy(), "root_cam": inputs.root_cam.numpy(), "R": inputs.R.numpy()}
            outputs = session.run(None, feed)
            with torch.no_grad():
                reference = model(inputs)[-1]
            for name, value in zip(OUTPUTS, outputs, strict=True):
                assert np.abs(value - getattr(reference, name).numpy()).max() < 1e-4, (calibrated, views, name)


def test_bundled_weights_load_and_run(body: BodyModel, tmp_path: Path) -> None:
    from engine.heatformer.runtime import DEFAULT_WEIGHTS, ModelFileError, load_heatformer

    model = load_heatformer(DEFAULT_WEIGHTS, body)
    with torch.no_grad():
        states = model(random_inputs(3, calibrated=True))
    assert len(states) == model.cfg.iterations + 1
    assert torch.isfinite(states[-1].joints).all()
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match=r"weights\.pt: cannot load"):
        load_heatformer(bad, body)
    with pytest.raises(ModelFileError, match="not found"):
        load_heatformer(tmp_path / "missing.pt", body)


def test_fusion_recovers_a_shared_world_body() -> None:
    from core.geometry import rodrigues_to_matrix
    from engine.heatformer.fusion import average_rotations, fuse_views

    rng = np.random.default_rng(0)
    world_orient = rodrigues_to_matrix(np.array([0.3, -1.2, 0.5]))
    pose = rodrigues_to_matrix(rng.normal(0, 0.4, (23, 3)))
    R = rodrigues_to_matrix(rng.normal(0, 1.0, (4, 3)))
    orient_cam = R @ world_orient  # what each view sees
    tilt = rodrigues_to_matrix(np.array([0.2, -0.1, 0.05]))  # two views err in opposite directions
    noisy_pose = np.stack([tilt @ pose, tilt.T @ pose, pose, pose])
    betas = np.stack([np.full(10, 0.5), np.full(10, 1.5), np.full(10, 1.0), np.full(10, 1.0)])
    fused_orient, fused_pose, fused_betas = fuse_views(orient_cam, noisy_pose, betas, R)
    assert np.allclose(fused_orient, world_orient, atol=1e-9)
    assert np.allclose(fused_pose, pose, atol=1e-6)
    assert np.allclose(fused_betas, 1.0)
    # the mean of +-20 degrees about one axis is the middle rotation
    pair = rodrigues_to_matrix(np.array([[0.0, 0.0, 0.35], [0.0, 0.0, -0.35]]))
    assert np.allclose(average_rotations(pair), np.eye(3), atol=1e-12)
    assert np.allclose(average_rotations(pair, np.array([1.0, 0.0])), pair[0], atol=1e-12)


@pytest.mark.slow
def test_keypoints_file_to_body_results(body: BodyModel, tmp_path: Path) -> None:
    """A calibrated keypoints exchange file (noise-free synthetic detections) through the CLI: with
    HeatFormer alone (--no-refine) the fused world body's mid-hip sits on the triangulated one and
    per-view results exist for every view; refined (the default), its keypoints come closer to the
    truth."""
    import subprocess
    import sys

    scene = sample_scene(body, 3, 3, torch.Generator().manual_seed(9), NoiseModel((0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 0.0))
    pix, _ = project(scene.keypoints3d, scene.K, scene.R, scene.t)
    keypoints = torch.cat([pix, torch.ones_like(pix[..., :1])], dim=-1).numpy().astype(np.float32)
    source = tmp_path / "kp.npz"
    keypoints = np.stack([keypoints[0]] * 3)  # a file describes one rig: three frames of the first scene
    np.savez(source, keypoints=keypoints, K=scene.K[0].numpy(), R=scene.R[0].numpy(), t=scene.t[0].numpy())
    out = tmp_path / "body.npz"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "engine.evaluate", "--keypoints", str(source), "--out", str(out),
                             "--no-refine"], cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = np.load(out)
    assert data["fused"].all() and data["valid"].all()
    assert data["view_body_pose"].shape == (3, 3, 23, 3) and data["joints"].shape == (3, 24, 3)
    from engine.body.lbs import axis_angle_to_matrix

    rot = torch.cat([axis_angle_to_matrix(torch.as_tensor(data["global_orient"][:1], dtype=torch.float32))[:, None],
                     axis_angle_to_matrix(torch.as_tensor(data["body_pose"][:1], dtype=torch.float32))], dim=1)  # fmt: skip
    fused = body.joints_rotmat(
        torch.as_tensor(data["betas"][:1], dtype=torch.float32), rot, torch.as_tensor(data["transl"][:1], dtype=torch.float32)
    )
    mid_hip = 0.5 * (fused.keypoints[0, 11] + fused.keypoints[0, 12])
    truth = 0.5 * (scene.keypoints3d[0, 11] + scene.keypoints3d[0, 12])
    assert (mid_hip - truth).norm() < 0.01
    assert np.allclose(data["joints"][0], fused.joints[0].numpy(), atol=1e-4)

    def keypoint_error(results: dict[str, np.ndarray]) -> float:
        orient, pose = (
            axis_angle_to_matrix(torch.as_tensor(results[k][:1], dtype=torch.float32)) for k in ("global_orient", "body_pose")
        )
        rot = torch.cat([orient[:, None], pose], dim=1)
        betas, transl = (torch.as_tensor(results[k][:1], dtype=torch.float32) for k in ("betas", "transl"))
        return float((body.joints_rotmat(betas, rot, transl).keypoints[0] - scene.keypoints3d[0]).norm(dim=-1).mean())

    alone = keypoint_error(dict(data))
    refined_out = tmp_path / "refined.npz"
    cmd = [sys.executable, "-m", "engine.evaluate", "--keypoints", str(source), "--out", str(refined_out)]
    assert subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300).returncode == 0
    refined = keypoint_error(dict(np.load(refined_out)))
    assert refined < 0.6 * alone, (refined, alone)
    cmd = [sys.executable, "-m", "engine.evaluate", "--keypoints", str(source), "--out", str(out), "--uncalibrated"]
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and not np.load(out)["fused"].any()


@pytest.mark.slow
def test_latency_measurement_reports_both_runtimes(body: BodyModel) -> None:
    from engine.heatformer.latency import measure

    result = measure(perturbed(body, TINY), views=2, repeats=3)
    assert result["views"] == 2 and result["iterations"] == 2
    for runtime in ("pytorch", "onnxruntime"):
        timing = result[runtime]
        assert 0 < timing["median_ms"] <= timing["p95_ms"]


@pytest.mark.parametrize("aug", [Augmentation(True, 0.0), Augmentation(False, 0.3), Augmentation(True, -0.25)])
def test_undo_maps_an_augmented_view_s_body_back(body: BodyModel, aug: Augmentation) -> None:
    """An estimate for the transformed image, undone, poses the body transformed back: joints
    by A^-1 (left and right exchanged when mirrored), keypoints by the inverse image transform."""
    model = HeatFormer(body, TINY).eval()
    g = torch.Generator().manual_seed(5)
    rot = axis_angle_to_matrix(0.6 * torch.randn(2, 1, 24, 3, generator=g))
    state = Estimate(
        matrix_to_rotation_6d(rot[:, :, 0]), matrix_to_rotation_6d(rot[:, :, 1:]), torch.randn(2, 1, 10, generator=g),
        torch.tensor([[[0.3, 0.05, -0.02]], [[-0.1, -0.08, 0.1]]]),
    )  # fmt: skip
    plain = ViewInputs(torch.zeros(2, 1, 17, 2), torch.ones(2, 1, 17), torch.zeros(2, 1, 3))
    seen, back = model._pose(state, plain), model._pose(aug.undo(state), plain)
    assert seen.joints is not None and back.joints is not None and seen.keypoints2d is not None and back.keypoints2d is not None
    assert float(seen.joints[..., 0].abs().max()) > 0.1  # a real pose, not the symmetric rest pose
    A = aug.matrix()
    c, s = math.cos(aug.angle), math.sin(aug.angle)
    flip = torch.diag(torch.tensor([-1.0 if aug.mirror else 1.0, 1.0, 1.0]))
    assert torch.allclose(A, torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ flip)  # mirror first, then roll
    joints, keypoints = seen.joints @ torch.linalg.inv(A).T, (seen.keypoints2d - 0.5) @ torch.linalg.inv(A[:2, :2]).T + 0.5
    if aug.mirror:
        joints, keypoints = joints[:, :, SMPL_LEFT_RIGHT], keypoints[:, :, list(COCO17_LEFT_RIGHT)]
    assert torch.allclose(back.joints, joints, atol=1e-5)
    assert torch.allclose(back.keypoints2d, keypoints, atol=1e-5)
    undone = aug.undo(seen)  # the state's own joints and keypoints follow too
    assert torch.allclose(undone.joints, joints, atol=1e-5) and torch.allclose(undone.keypoints2d, keypoints, atol=1e-5)
    # and the transformed inputs are the keypoints the transformed body would project to
    moved = aug.apply(ViewInputs(back.keypoints2d, torch.ones(2, 1, 17), torch.zeros(2, 1, 3)))
    assert torch.allclose(moved.obs_xy, seen.keypoints2d, atol=1e-5)


@pytest.mark.slow
def test_augmented_average_is_mirror_symmetric_and_only_for_one_uncalibrated_view(body: BodyModel) -> None:
    """Averaged over the augmentations, a single view's answer for the mirrored image is exactly
    the mirror of its answer for the image (a plain model's is not); batched and unbatched runs
    agree; several views or calibrated inputs run the model unchanged."""
    model = perturbed(body, TINY, seed=2)
    one = random_inputs(1, calibrated=False, seed=4)
    mirror = Augmentation(mirror=True)
    with torch.no_grad():
        averaged = augmented_average(model, one)
        of_mirror = augmented_average(model, mirror.apply(one))[-1]
        unbatched = augmented_average(model, one, batched=False)[-1]
        calls: list[int] = []
        augmented_average(lambda x: calls.append(x.obs_xy.shape[0]) or model(x), one)
        assert calls == [2 * len(AUGMENTATIONS)]  # batched: one run of all six transforms (two samples each)
        plain, plain_mirror = model(one)[-1], mirror.undo(model(mirror.apply(one))[-1])
        assert len(averaged) == TINY.iterations + 1 and len(AUGMENTATIONS) == 6
        final, back = averaged[-1], mirror.undo(of_mirror)
        for name in ("orient", "pose"):
            mats = [rotation_6d_to_matrix(getattr(s, name)) for s in (final, back, unbatched, plain, plain_mirror)]
            assert torch.allclose(mats[0], mats[1], atol=1e-5) and torch.allclose(mats[0], mats[2], atol=1e-5)
            assert (mats[3] - mats[4]).abs().max() > 1e-3  # the model alone is not mirror-symmetric
        assert torch.allclose(final.cam, back.cam, atol=1e-5) and torch.allclose(final.betas, back.betas, atol=1e-5)
        for inputs in (random_inputs(2, calibrated=False), random_inputs(1, calibrated=True)):
            assert torch.equal(augmented_average(model, inputs)[-1].pose, model(inputs)[-1].pose)


def test_augmented_answers_count_by_the_model_s_own_view_weight(body: BodyModel) -> None:
    """The transformed answers are averaged with the softmax of the view weight the model gave
    each in its last iteration (the weight it fuses several views' proposals with): a dominant
    weight picks that answer, equal weights give the plain mean, states without weights (the
    initial one) count equally, and the model's answers carry unequal weights."""
    g = torch.Generator().manual_seed(8)
    rot = axis_angle_to_matrix(0.5 * torch.randn(3, 2, 1, 24, 3, generator=g))
    states = [
        Estimate(matrix_to_rotation_6d(r[:, :, 0]), matrix_to_rotation_6d(r[:, :, 1:]), torch.randn(2, 1, 10, generator=g),
                 torch.randn(2, 1, 3, generator=g), view_logit=torch.tensor([[[logit]], [[0.0]]]))
        for r, logit in zip(rot, (30.0, 0.0, 0.0), strict=True)
    ]  # fmt: skip
    mean = average(states)
    # sample 0: the first answer dominates; sample 1: equal weights, the mean of the three
    assert torch.allclose(rotation_6d_to_matrix(mean.pose[0]), rot[0, 0, :, 1:], atol=1e-5)
    assert torch.allclose(mean.betas[0], states[0].betas[0], atol=1e-5)
    assert torch.allclose(mean.betas[1], sum(s.betas[1] for s in states) / 3, atol=1e-6)
    plain = average([replace(s, view_logit=None) for s in states])
    assert torch.allclose(plain.betas, sum(s.betas for s in states) / 3, atol=1e-6)
    model = perturbed(body, TINY, seed=2)
    one = random_inputs(1, calibrated=False, seed=4)
    with torch.no_grad():
        answers = [a.undo(model(a.apply(one))[-1]) for a in AUGMENTATIONS]
        final = augmented_average(model, one)[-1]
    logits = torch.stack([s.view_logit for s in answers])[..., 0, 0]  # [6, B]
    assert float((logits.max(dim=0).values - logits.min(dim=0).values).min()) > 1e-3
    w = torch.softmax(logits, dim=0)
    expected = sum(w[i][:, None, None] * s.betas for i, s in enumerate(answers))
    assert torch.allclose(final.betas, expected, atol=1e-5)
    assert not torch.allclose(final.betas, sum(s.betas for s in answers) / 6, atol=1e-5)


@pytest.mark.slow
def test_runners_augment_one_uncalibrated_view(body: BodyModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The inference backends give the PyTorch model's augmented answer for one view."""
    monkeypatch.setenv("ROOM_CAPTURE_CACHE", str(tmp_path))
    model = perturbed(body, TINY, seed=3)
    one = random_inputs(1, calibrated=False, seed=6)
    with torch.no_grad():
        reference = augmented_average(model, one)[-1]
    names = ["torch"] + (["onnxruntime"] if importlib.util.find_spec("onnxruntime") else [])
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = HeatFormerRunner.create(name, model, f"tta-test-{name}")(one)
        for key in ("orient", "pose", "betas", "cam", "joints"):
            assert np.abs(out[key] - getattr(reference, key).numpy()).max() < 1e-4, (name, key)
