"""The training lab: synthetic scenes, losses, metrics, the training configs and loop, and one
setting of the synthetic benchmark."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from core.paths import CONFIGS_DIR
from engine.body import BodyModel
from engine.body.lbs import axis_angle_to_matrix, matrix_to_rotation_6d
from engine.heatformer.inputs import prepare
from engine.heatformer.model import Estimate, HeatFormer, HeatFormerConfig
from tests.test_heatformer import TINY, perturbed
from training.evaluate import run_setting, world_bodies
from training.losses import LossWeights, Targets, aligned_error, loss, targets
from training.metrics import ARM_JOINTS, mpjpe, mpvpe, pa_mpjpe
from training.synth.scene import NoiseModel, PoseBank, sample_scene
from training.train import batch_size, draw_views, load_config, step_batch


def test_synthetic_scenes_are_plausible(body: BodyModel) -> None:
    scene = sample_scene(body, 64, 4, torch.Generator().manual_seed(4))
    assert scene.keypoints3d[..., 2].min() >= 0.079  # on or above the floor
    torso = scene.keypoints3d[:, 5:13, 2].amax(dim=1)  # shoulders, elbows, wrists, hips
    standing = torch.tensor([a in ("standing", "walking") for a in scene.activities])
    lying = torch.tensor([a == "lying" for a in scene.activities])
    assert torso[standing].median() > 1.2 and torso[lying].median() < 0.7
    seen = (scene.observed[..., 2] > 0).float().mean()
    assert 0.6 < seen < 0.95  # dropped, truncated and masked keypoints, but most are seen


def test_local_joint_loss_ignores_the_global_orientation_and_sees_the_pose(body: BodyModel) -> None:
    """The body-frame joint term: the true body turned 40 degrees as a whole costs nothing there
    (but ~0.1 m in the camera-frame joint term); a bent knee costs it what it moves the joints."""
    scene = sample_scene(body, 3, 2, torch.Generator().manual_seed(11))
    target = targets(scene, prepare(scene.observed))
    turn = axis_angle_to_matrix(torch.tensor([0.0, 0.7, 0.0]))  # 40 degrees about the camera's y

    def estimate(orient: torch.Tensor, pose: torch.Tensor) -> Estimate:
        rot = torch.cat([orient.reshape(-1, 1, 3, 3), pose[:, None].expand(-1, 2, -1, -1, -1).reshape(-1, 23, 3, 3)], dim=1)
        out = body.joints_rotmat(scene.betas.repeat_interleave(2, 0), rot)
        root = 0.5 * (out.keypoints[:, 11] + out.keypoints[:, 12])
        joints = (out.joints - root[:, None]).reshape(3, 2, 24, 3)
        pose6d = matrix_to_rotation_6d(pose)[:, None].expand(-1, 2, -1, -1)
        return Estimate(matrix_to_rotation_6d(orient), pose6d, scene.betas[:, None].expand(-1, 2, -1), torch.zeros(3, 2, 3),
                        target.keypoints2d, joints)  # fmt: skip

    weights = LossWeights(local_joints=1.0)
    _, exact = loss([estimate(target.orient, target.pose)], target, weights)
    _, turned = loss([estimate(turn @ target.orient, target.pose)], target, weights)
    knee = target.pose.clone()
    knee[:, 3] = axis_angle_to_matrix(torch.tensor([1.2, 0.0, 0.0])) @ knee[:, 3]  # left knee (SMPL joint 4)
    _, bent = loss([estimate(target.orient, knee)], target, weights)
    assert exact["mpjpe_mm_0"] < 1.0 and exact["local_mm_0"] < 1.0
    assert turned["mpjpe_mm_0"] > 60.0 and turned["local_mm_0"] < 1.0
    assert bent["local_mm_0"] == pytest.approx(bent["mpjpe_mm_0"], rel=1e-4) and bent["local_mm_0"] > 10.0
    _, plain = loss([estimate(turn @ target.orient, target.pose)], target)
    assert "local_mm_0" not in plain  # off by default: a config sets it


def test_procrustes_joint_term_forgives_size_turn_and_shift_only() -> None:
    """The Procrustes-aligned joint term: the true joints scaled by 1.15, turned 50 degrees and
    moved cost nothing; one joint 12 cm off costs at most its share, and the gradient reaches the
    estimate, most of it at that joint (only the alignment is held fixed)."""
    gen = torch.Generator().manual_seed(21)
    truth = 0.4 * torch.randn(2, 3, 24, 3, generator=gen)  # [B, V, J, 3]
    turn = axis_angle_to_matrix(torch.tensor([0.2, 0.8, -0.3]))
    moved = 1.15 * truth @ turn.T + torch.tensor([0.3, -0.1, 2.0])
    assert float(aligned_error(moved, truth)) < 1e-5
    assert float((moved - truth).norm(dim=-1).mean()) > 0.2
    bent = moved.clone()
    bent[..., 4, :] += torch.tensor([0.0, 0.12, 0.0])  # one joint 12 cm off
    estimate = bent.clone().requires_grad_(True)
    error = aligned_error(estimate, truth)
    # Mean <= root mean square <= that of the true transform (least squares), where only the one
    # joint is off: by 12 cm / 1.15 in the truth's units.
    assert 0.003 < float(error) < 0.12 / 1.15 / math.sqrt(24)
    error.backward()
    assert estimate.grad is not None and float(estimate.grad[..., 4, :].norm()) > float(estimate.grad[..., 0, :].norm())
    _, parts = loss([Estimate(torch.zeros(2, 3, 6), torch.zeros(2, 3, 23, 6), torch.zeros(2, 3, 10), torch.zeros(2, 3, 3),
                               torch.zeros(2, 3, 17, 2), moved)],
                    Targets(torch.eye(3).expand(2, 3, 3, 3), torch.eye(3).expand(2, 23, 3, 3), torch.zeros(2, 10), truth,
                            torch.zeros(2, 3, 17, 2)), LossWeights(pa_joints=1.0))  # fmt: skip
    assert parts["pa_mm_0"] < 0.01 and parts["mpjpe_mm_0"] > 200.0


@pytest.mark.slow
def test_tiny_model_overfits_a_few_samples(body: BodyModel) -> None:
    """The training loop learns: on 4 fixed samples the refined estimate's joint error falls 10x
    (the initial state, mean pose, cannot and is not asked to)."""
    torch.manual_seed(0)
    scene = sample_scene(body, 4, 2, torch.Generator().manual_seed(5))
    inputs = prepare(scene.observed)
    target = targets(scene, inputs)
    model = HeatFormer(body, HeatFormerConfig(map_size=16, patch=4, width=32, heads=2, layers=1, iterations=1))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    history = []
    for _ in range(150):
        total, parts = loss(model(inputs), target)
        history.append(parts["mpjpe_mm_1"])
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert history[-1] < history[0] / 10, (history[0], history[-1])


def test_metrics_on_known_geometry() -> None:
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(3, 24, 3, generator=g)
    assert torch.allclose(mpjpe(gt + 5.0, gt), torch.zeros(3), atol=1e-6)  # translation is aligned away
    shifted = gt.clone()
    shifted[:, 5] += torch.tensor([0.0, 0.24, 0.0])  # one joint off by 24 cm -> 1 cm mean
    assert torch.allclose(mpjpe(shifted, gt), torch.full((3,), 0.01), atol=1e-6)
    angle = torch.tensor(0.7)
    rot = torch.tensor([[torch.cos(angle), -torch.sin(angle), 0.0], [torch.sin(angle), torch.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    similar = 1.3 * gt @ rot.T + torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(pa_mpjpe(similar, gt), torch.zeros(3), atol=1e-5)
    wrist = gt.clone()
    wrist[:, 20] += torch.tensor([0.0, 0.0, 0.4])  # a wrist off by 40 cm: about 0.4 / 4 over the arms
    arms, whole = pa_mpjpe(wrist, gt, ARM_JOINTS), pa_mpjpe(wrist, gt)  # (the alignment spreads a little)
    assert bool((arms > 2 * whole).all()) and bool((arms > 0.08).all()) and bool((arms < 0.12).all()), (arms, whole)
    assert torch.allclose(pa_mpjpe(similar, gt, ARM_JOINTS), torch.zeros(3), atol=1e-5)
    assert mpjpe(similar, gt).min() > 0.1
    assert torch.allclose(mpvpe(gt + 1.0, gt, gt[:, 0] + 1.0, gt[:, 0]), torch.zeros(3), atol=1e-6)


@pytest.mark.slow
def test_benchmark_setting_scores_both_and_times_single_frame_sets(body: BodyModel) -> None:
    """One benchmark setting on noise-free 3-view detections: the baseline fit (DLT + fit) lands
    within 6 cm of the truth, the untrained tiny model does not, and both are timed on
    single frame-sets (the baseline's 100 fit steps take far longer than one model pass)."""
    clean = NoiseModel((0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 0.0)
    scene = sample_scene(body, 3, 3, torch.Generator().manual_seed(11), clean)
    result = run_setting(perturbed(body, TINY), scene, calibrated=True, baseline_steps=100)
    per_iteration = result["heatformer"]["per_iteration"]
    assert len(per_iteration) == TINY.iterations + 1
    assert result["baseline"]["mpjpe_mm"] < 60 < per_iteration[-1]["mpjpe_mm"]
    assert result["baseline"]["pa_mpjpe_mm"] <= result["baseline"]["mpjpe_mm"]
    assert result["speedup"] > 3


def test_benchmark_scores_the_world_body_alone_and_refined(model: HeatFormer) -> None:
    """The synthetic benchmark's side-by-side columns: on noise-free 4-view detections the shipped
    model's fused world body is refined closer to the truth, and both are timed."""
    clean = NoiseModel((0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 0.0)
    scene = sample_scene(model.body, 4, 4, torch.Generator().manual_seed(5), clean)
    alone, refined = world_bodies(model, scene, refine=False), world_bodies(model, scene, refine=True)
    assert alone["fused"] == refined["fused"] == 4 and alone["samples"] == 4
    assert refined["world_mpjpe_mm"] < 0.8 * alone["world_mpjpe_mm"], (alone, refined)
    assert refined["pa_mpjpe_mm"] <= refined["mpjpe_mm"] and refined["ms_per_frameset"] > alone["ms_per_frameset"] > 0
    assert sum(part["samples"] for part in refined["by_activity"].values()) == refined["fused"]


def test_benchmark_refines_uncalibrated_views_closer_to_the_truth(model: HeatFormer) -> None:
    """Uncalibrated settings' "refined" column: on noise-free 4-view detections the views' joint fit
    (one pose and shape, per view a root and a place, through the assumed lens) lowers PA-MPJPE."""
    from engine.heatformer.inputs import prepare
    from engine.heatformer.tta import augmented_average
    from training.evaluate import camera_frame_truth, estimate_bodies, score, view_refined

    clean = NoiseModel((0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 0.0)
    scene = sample_scene(model.body, 6, 4, torch.Generator().manual_seed(5), clean)
    inputs = prepare(scene.observed)
    with torch.no_grad():
        final = augmented_average(model, inputs)[-1]
    truth = camera_frame_truth(model.body, scene)
    alone = score(*estimate_bodies(model.body, final), *truth)
    refined = view_refined(model, inputs, final, *truth, scene.image_size, scene.activities)
    assert refined["pa_mpjpe_mm"] < 0.6 * alone["pa_mpjpe_mm"], (alone, refined)  # 26.0 -> 12.3 mm
    assert refined["ms_per_frameset"] > 0
    # the breakdown by activity covers every sample and averages back to the whole setting's figure
    parts = refined["by_activity"].values()
    assert set(refined["by_activity"]) == set(scene.activities) and sum(p["samples"] for p in parts) == 6
    assert abs(sum(p["samples"] * p["pa_mpjpe_mm"] for p in parts) / 6 - refined["pa_mpjpe_mm"]) < 0.2


def test_benchmark_breaks_the_error_down_by_activity() -> None:
    """Each sample's PA-MPJPE is the mean over its views; each activity's the mean over its samples."""
    from training.evaluate import by_activity

    pa = torch.tensor([0.01, 0.03, 0.10, 0.10, 0.05, 0.07])  # 3 samples x 2 views: 20, 100 and 60 mm
    assert by_activity(pa, ["standing", "recorded", "standing"]) == {
        "recorded": {"samples": 1, "pa_mpjpe_mm": 100.0},
        "standing": {"samples": 2, "pa_mpjpe_mm": 40.0},
    }


def test_training_configs_load_and_single_view_options_apply() -> None:
    """The two training configs parse (from scratch, and continuing the shipped weights with the
    settings of their last run); single_view_fraction raises the share of one-view batches from
    the uniform 1/8 to fraction + (1 - fraction)/8; single_view_batch sizes only the one-view
    batches."""
    model_cfg, base = load_config(CONFIGS_DIR / "heatformer_s.toml")
    continue_model, cont = load_config(CONFIGS_DIR / "heatformer_s_continue.toml")
    assert model_cfg.keypoint_input and base.single_view_fraction == 0.0
    assert continue_model == model_cfg and cont.lr < base.lr and cont.lr_final < base.lr_final
    assert cont.augment_recorded and cont.mix_limbs and cont.local_joints > 0 and cont.pa_joints > 0
    assert base.local_joints == base.pa_joints == 0.0 and not base.mix_limbs
    assert base.arm_gestures == 0.0 and 0.0 < cont.arm_gestures < 0.5  # everyday arm gestures on some bodies
    assert [batch_size(base, v) for v in (1, 2, 8)] == [32, 32, 32]
    assert [batch_size(cont, v) for v in (1, 2, 8)] == [256, 48, 48]
    shares = []
    for fraction in (0.0, 0.6):
        cfg = replace(base, single_view_fraction=fraction)
        g = torch.Generator().manual_seed(3)
        views = [draw_views(cfg, g) for _ in range(400)]
        assert set(views) == set(range(1, 9))
        shares.append(views.count(1) / len(views))
    assert shares[0] < 0.2 and shares[1] > 0.55, shares


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here: the CUDA training test runs where one is")
def test_training_steps_run_on_cuda_with_the_data_drawn_there(body: BodyModel) -> None:
    """Training batches drawn and scored on the GPU (activity poses, the recorded bank with
    augmentation), as ``python -m training.train --device cuda`` does: no tensor left behind on the
    CPU, a finite loss and gradients."""
    _, cfg = load_config(CONFIGS_DIR / "heatformer_s_continue.toml")
    cfg = replace(cfg, batch=16, single_view_batch=16)
    torch.set_default_device("cuda")
    try:
        model = HeatFormer(body, TINY).to("cuda")
        bank = PoseBank.load()
        assert bank.body_pose.is_cuda
        g = torch.Generator(device="cuda").manual_seed(1)
        for _ in range(6):
            total, parts = step_batch(model, cfg, g, bank)
            total.backward()
            assert math.isfinite(float(total)) and parts["views"] >= 1
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    finally:
        torch.set_default_device("cpu")
        body.to("cpu")
