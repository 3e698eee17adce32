"""Synthetic data: CMU retargeting on real clips, the recorded-pose bank, activity poses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from core.paths import SYNTH_DIR
from engine.body import BodyModel
from engine.body.lbs import axis_angle_to_matrix
from engine.body.model_file import SMPL_LEFT_RIGHT, SMPL_PARENTS
from training.synth.cmu import parse_asf, retarget
from training.synth.poses import (
    BALANCE_LEGS,
    GESTURES,
    JOINT_LIMITS,
    everyday_arms,
    one_leg_balance,
    sample_activity_poses,
    widen_limbs,
)
from training.synth.scene import BALANCE_ACTIVITIES, HELD_OUT_CLIPS, LIMBS, PoseBank, Scene, sample_scene

SPINE_ROWS = [2, 5, 8, 11, 14]  # body-pose rows of the spine, neck and head

CMU = SYNTH_DIR / "cmu"


def posed(body: BodyModel, pose: np.ndarray, root: np.ndarray) -> np.ndarray:
    from engine.body.lbs import axis_angle_to_matrix

    rot = torch.cat(
        [torch.as_tensor(root, dtype=torch.float32)[:, None], axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float32))], 1
    )
    return body.joints_rotmat(torch.zeros(len(pose), 10), rot).joints.numpy()


def test_asf_skeleton_is_read(body: BodyModel) -> None:
    bones = parse_asf(CMU / "zombie.asf")
    assert len(bones) == 31
    assert bones["ltibia"].parent == "lfemur" and bones["lfemur"].parent == "lhipjoint"
    assert bones["lhumerus"].dofs == ["rx", "ry", "rz"] and bones["ltibia"].dofs == ["rx"]
    assert bones["lfemur"].direction[0] > 0.3  # the subject's left is +X, like SMPL


def test_retargeted_zombie_walks_with_arms_forward(body: BodyModel) -> None:
    rest = body.joint_template.double().numpy()
    pose, root = retarget(CMU / "zombie.asf", CMU / "zombie.amc", rest, SMPL_PARENTS, step=8)
    joints = posed(body, pose, np.repeat(np.eye(3)[None], len(pose), 0))  # in the body frame
    wrist_ahead = joints[:, 20, 2] - joints[:, 16, 2]  # left wrist in front of the left shoulder (+Z)
    assert np.median(wrist_ahead) > 0.3
    head_up = joints[:, 15, 1] - joints[:, 0, 1]
    ankles_down = joints[:, 0, 1] - joints[:, [7, 8], 1].max(axis=1)
    assert np.all(head_up > 0.4) and np.median(ankles_down) > 0.6  # upright: head above, feet below


def test_backflip_turns_upside_down(body: BodyModel) -> None:
    rest = body.joint_template.double().numpy()
    pose, root = retarget(CMU / "backflip.asf", CMU / "backflip.amc", rest, SMPL_PARENTS)
    up = root[:, :, 1]  # where the body's Y axis points (CMU world: Y up)
    assert up[0, 1] > 0.9 and up[:, 1].min() < -0.8


def test_pose_bank_holds_out_a_clip_and_samples_plausible_bodies(body: BodyModel) -> None:
    train, held = PoseBank.load(), PoseBank.load(held_out=True)
    assert HELD_OUT_CLIPS == ("pirouette",)
    assert len(held.body_pose) == 148 and len(train.body_pose) == 1261
    scene = sample_scene(body, 32, 2, torch.Generator().manual_seed(0), bank=train, bank_fraction=1.0)
    assert all(a == "recorded" for a in scene.activities)
    assert torch.isfinite(scene.keypoints3d).all() and scene.keypoints3d[..., 2].min() >= 0.079


def test_augmented_recorded_poses_are_mirrored_mixed_and_jittered(body: BodyModel) -> None:
    """Training augmentation of the recorded poses: with the same draws, a mirrored pose poses the
    mirror image of the recorded body (left and right joints exchanged); about half are mirrored,
    about a third take other legs, and all stay close to a recorded pose. Without augmentation
    the draws and poses are those of the plain sampler (the benchmark's)."""
    bank = PoseBank.load()
    plain = bank.sample(400, torch.Generator().manual_seed(3))
    again = bank.sample(400, torch.Generator().manual_seed(3), augment=False)
    assert torch.equal(plain[0], again[0]) and torch.equal(plain[1], again[1])
    g = torch.Generator().manual_seed(4)
    index = torch.randint(0, len(bank.body_pose), (400,), generator=g)
    pose, root = bank.sample(400, torch.Generator().manual_seed(4), augment=True)
    source = bank.body_pose[index]
    lr = [j - 1 for j in SMPL_LEFT_RIGHT[1:]]
    mirrored = source[:, lr] * torch.tensor([1.0, -1.0, -1.0])
    arms = [i for i in range(23) if i not in (0, 1, 3, 4, 6, 7, 9, 10)]  # the upper body keeps the drawn pose
    near_plain = (pose[:, arms] - source[:, arms]).abs().amax(dim=(1, 2)) < 0.5
    near_mirror = (pose[:, arms] - mirrored[:, arms]).abs().amax(dim=(1, 2)) < 0.5
    assert 0.4 < float(near_mirror.float().mean()) < 0.6 and bool((near_plain | near_mirror).all())
    # A mirrored body is the mirror image: joints x -> -x in the recorded (Y up) frame, sides exchanged.
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    k = int(torch.nonzero(near_mirror & ~near_plain)[0])
    r0 = axis_angle_to_matrix(source[k])
    r1 = axis_angle_to_matrix(mirrored[k])
    j0 = body.joints_rotmat(torch.zeros(1, 10), torch.cat([bank.root[index[k]][None], r0])[None]).joints[0]
    j1 = body.joints_rotmat(torch.zeros(1, 10), torch.cat([(mirror @ bank.root[index[k]] @ mirror)[None], r1])[None]).joints[0]
    assert torch.allclose(j1, j0[list(SMPL_LEFT_RIGHT)] @ mirror, atol=1e-5)
    assert float(j0[:, 0].abs().max()) > 0.1
    legs = [0, 1, 3, 4, 6, 7, 9, 10]
    own_legs = ((pose[:, legs] - source[:, legs]).abs().amax(dim=(1, 2)) < 0.5) | (
        (pose[:, legs] - mirrored[:, legs]).abs().amax(dim=(1, 2)) < 0.5
    )
    assert 0.2 < 1 - float(own_legs.float().mean()) < 0.45  # a third take other legs (rarely the same ones)
    assert 0.03 < float((pose - torch.where(near_mirror[:, None, None], mirrored, source))[:, arms].std()) < 0.12


def test_mixed_limbs_come_one_by_one_from_other_recorded_poses() -> None:
    """``mix_limbs``: each arm and each leg alone, about a third of the time, takes the rows of
    another recorded pose (the spine and head never do), so arms and legs of one body come from
    different poses."""
    bank = PoseBank.load()
    n = 600
    g = torch.Generator().manual_seed(5)  # the sampler's draws, in its order
    index = torch.randint(0, len(bank.body_pose), (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    draws = [(torch.rand(n, generator=g) < 1 / 3, torch.randint(0, len(bank.body_pose), (n,), generator=g)) for _ in LIMBS]
    pose, _ = bank.sample(n, torch.Generator().manual_seed(5), augment=True, mix_limbs=True)
    lr = [j - 1 for j in SMPL_LEFT_RIGHT[1:]]
    source = bank.body_pose[index]
    drawn = torch.where(flip[:, None, None], source[:, lr] * torch.tensor([1.0, -1.0, -1.0]), source)

    def near(rows: list[int], reference: Tensor) -> Tensor:
        """Whether those rows of each pose are within the 0.08 rad noise of the reference's."""
        return (pose[:, rows] - reference[:, rows]).abs().amax(dim=(1, 2)) < 0.5

    assert bool(near(SPINE_ROWS, drawn).all())
    for rows, (mixed, other) in zip(LIMBS, draws, strict=True):
        assert 0.25 < float(mixed.float().mean()) < 0.42
        assert bool(near(rows, bank.body_pose[other])[mixed].all()) and bool(near(rows, drawn)[~mixed].all())
        moved = mixed & ~near(rows, drawn)  # the other pose's limb differs from the drawn one's
        assert float(moved.float().mean()) > 0.05


def unchanged_at_zero(
    body: BodyModel, augment: Callable[[Tensor, float, torch.Generator], Tensor], option: str
) -> tuple[Tensor, Scene]:
    """A training-only pose augmentation at fraction 0 returns the poses as they are and draws
    nothing, so ``sample_scene`` with ``option`` = 0 gives the benchmark's scenes unchanged.
    Returns 3,000 activity poses and that scene."""
    g = torch.Generator().manual_seed(5)
    pose, _ = sample_activity_poses(3000, g)
    state = g.get_state()
    assert augment(pose, 0.0, g) is pose and torch.equal(g.get_state(), state)
    plain = sample_scene(body, 16, 2, torch.Generator().manual_seed(6))
    again = sample_scene(body, 16, 2, torch.Generator().manual_seed(6), **{option: 0.0})
    assert torch.equal(plain.observed, again.observed) and torch.equal(plain.body_pose, again.body_pose)
    return pose, plain


def test_wide_limbs_raise_legs_and_arms_on_both_sides_within_limits(body: BodyModel) -> None:
    """Training-only limb widening: with fraction 0 nothing changes and nothing is drawn (the
    benchmark's scenes stay the same); with fraction f about f of the bodies change, each limb of
    those with even odds; the new poses respect the joint limits and reach what the templates
    rarely do (legs out to the side and up, hands above the head), alike on the left and right."""
    pose, _ = unchanged_at_zero(body, widen_limbs, "wide_limbs")
    wide = widen_limbs(pose, 0.3, torch.Generator().manual_seed(7))
    changed = (wide - pose).abs().amax(dim=-1) > 1e-6  # [n, 23]
    assert 0.25 < float(changed.any(dim=1).float().mean()) < 0.35
    legs, arms = [0, 3, 6, 9], [15, 17, 19]  # left hip, knee, ankle, foot; left shoulder, elbow, wrist
    assert bool((changed[:, legs].any(1) == changed[:, legs].all(1)).all())  # a limb changes as a whole
    assert 0.12 < float(changed[:, legs[0]].float().mean()) < 0.18 and 0.12 < float(changed[:, arms[0]].float().mean()) < 0.18
    assert not changed[:, [2, 5, 8, 11, 14]].any()  # spine, neck and head untouched
    assert bool((wide.norm(dim=-1) <= JOINT_LIMITS + 1e-5).all())

    every = widen_limbs(pose, 1.0, torch.Generator().manual_seed(8))
    rest = torch.eye(3).expand(len(pose), 1, 3, 3)
    j = body.joints_rotmat(torch.zeros(len(pose), 10), torch.cat([rest, axis_angle_to_matrix(every)], 1)).joints
    j0 = body.joints_rotmat(torch.zeros(len(pose), 10), torch.cat([rest, axis_angle_to_matrix(pose)], 1)).joints
    # body frame: Y up, the subject's left +X; ankles 7 / 8, wrists 20 / 21, head 15, pelvis 0
    side = torch.tensor([1.0, -1.0])
    out, out0 = ((side * x[:, [7, 8], 0] > 0.3).float().mean(0) for x in (j, j0))
    up, up0 = ((x[:, [20, 21], 1] > x[:, [15], 1]).float().mean(0) for x in (j, j0))
    raised, raised0 = ((x[:, [7, 8], 1] > x[:, [0], 1] - 0.3).float().mean() for x in (j, j0))
    assert bool((out > out0 + 0.15).all() and (out > 0.3).all()), (out0, out)
    assert bool((up > up0 + 0.06).all() and (up > 0.12).all() and (up < 0.25).all()), (up0, up)
    assert float(raised) > float(raised0) + 0.08


def _rest_joints(body: BodyModel, pose: Tensor) -> Tensor:
    """SMPL joints ``[n, 24, 3]`` of ``pose`` ``[n, 23, 3]`` on the mean body, in the body frame."""
    rest = torch.eye(3).expand(len(pose), 1, 3, 3)
    return body.joints_rotmat(torch.zeros(len(pose), 10), torch.cat([rest, axis_angle_to_matrix(pose)], 1)).joints


def test_everyday_arm_gestures_put_the_hands_where_the_gesture_does(body: BodyModel) -> None:
    """Each everyday gesture (issue 27: the arm poses of the rooms the app watches), drawn alone on
    an upright body, puts the wrists where it should relative to the head, the shoulder and the
    body's midline (body frame: Y up, Z forward, the subject's left +X; SMPL joints head 15,
    shoulders 16 / 17, wrists 20 / 21); medians over 300 draws, so the checks hold for the gesture,
    not for one lucky draw. One-arm gestures move one arm only."""
    names = [name for name, _, _ in GESTURES]
    assert set(names) >= {"shelf", "cup", "phone_call", "hands_to_face", "arms_crossed", "walker", "pointing", "waving"}
    n = 300
    for name, _, arms in GESTURES:
        pose = everyday_arms(torch.zeros(n, 23, 3), 1.0, torch.Generator().manual_seed(3), ((name, 1.0, arms),))
        assert bool((pose.norm(dim=-1) <= JOINT_LIMITS + 1e-5).all()), name
        moved = pose.abs().sum(-1) > 0  # [n, 23]
        assert not moved[:, [i for i in range(23) if i not in (15, 16, 17, 18, 19, 20)]].any(), name  # arms only
        left, right = moved[:, 15] | moved[:, 17], moved[:, 16] | moved[:, 18]
        if arms == "both":
            assert float((left & right).float().mean()) > 0.95, name
        else:
            assert not bool((left & right).any()) and 0.4 < float(left.float().mean()) < 0.6, name
        j = _rest_joints(body, pose)
        for side, wrist, shoulder, used in ((1.0, 20, 16, left), (-1.0, 21, 17, right)):
            rel = (j[used, wrist] - j[used, 15]).median(dim=0).values  # wrist from the head
            out = side * float(rel[0])  # > 0: out to the arm's own side
            up = float((j[used, wrist, 1] - j[used, shoulder, 1]).median())  # above the shoulder
            reach = float((j[used, wrist] - j[used, shoulder]).norm(dim=-1).median())
            near_head = float((j[used, wrist] - j[used, 15]).norm(dim=-1).median())
            checks = {
                "shelf": float(rel[1]) > 0.05 and float(rel[2]) > 0.1,  # above the head, in front
                "cup": -0.5 < float(rel[1]) < -0.2 and float(rel[2]) > 0.15,  # in front of the chest
                "phone_call": near_head < 0.35 and float(rel[1]) > -0.3,
                "hands_to_face": near_head < 0.3 and float(rel[2]) > 0.05,
                "arms_crossed": out < 0.0 and -0.5 < float(rel[1]) < -0.2,  # past the midline, at the chest
                "walker": float(rel[2]) > 0.25 and -0.6 < float(rel[1]) < -0.3,  # in front, at hip height
                "pointing": reach > 0.45 and float(rel[2]) > 0.2,  # a straight arm, forward
                "waving": up > 0.1 and out > 0.25,  # raised out to the side
            }
            assert checks[name], (name, side, rel.tolist(), up, reach, near_head)
            down = _rest_joints(body, torch.zeros(1, 23, 3))  # against the T-pose: the gesture moved the hand
            assert float((j[used, wrist] - down[:, wrist]).norm(dim=-1).median()) > 0.2, name


def test_everyday_arms_keep_the_rest_of_the_pose_and_the_benchmark(body: BodyModel) -> None:
    """With fraction 0 nothing changes and nothing is drawn (the benchmark's scenes stay the same);
    with fraction f about f of the bodies get a gesture, and only their arms change."""
    pose, plain = unchanged_at_zero(body, everyday_arms, "arm_gestures")
    some = everyday_arms(pose, 0.3, torch.Generator().manual_seed(7))
    changed = (some - pose).abs().amax(dim=-1) > 1e-6  # [n, 23]
    assert 0.25 < float(changed.any(dim=1).float().mean()) < 0.35
    assert not changed[:, :15].any() and not changed[:, 21:].any()  # legs, spine, collars, hands untouched
    assert bool((some.norm(dim=-1) <= JOINT_LIMITS + 1e-5).all())
    gestured = sample_scene(body, 16, 2, torch.Generator().manual_seed(6), arm_gestures=1.0)
    assert not torch.equal(gestured.body_pose[:, 15:21], plain.body_pose[:, 15:21])
    assert torch.equal(gestured.body_pose[:, :15], plain.body_pose[:, :15])


def test_one_leg_balance_lifts_one_foot_and_keeps_the_other_under_the_body(body: BodyModel) -> None:
    """One-leg balance (the bundled demo is a balance trial): each way of holding the free leg,
    drawn alone on 300 bodies, lifts that foot off the floor while the stance foot stays under the
    hips, and puts the free foot where the name says (body frame: Y up, Z forward, the subject's
    left +X; SMPL joints pelvis 0, hips 1 / 2, knees 4 / 5, ankles 7 / 8); medians over the draws.
    Either leg with even odds, within the joint limits, and two in three bodies with the arms out
    (wrists away from the hips)."""
    assert {name for name, _ in BALANCE_LEGS} == {"knee_up", "foot_back", "leg_side", "leg_back", "turned_out"}
    n = 300
    for name, _ in BALANCE_LEGS:
        pose = one_leg_balance(torch.zeros(n, 23, 3), 1.0, torch.Generator().manual_seed(4), legs=((name, 1.0),))
        assert bool((pose.norm(dim=-1) <= JOINT_LIMITS + 1e-5).all()), name
        j = _rest_joints(body, pose)
        left_free = j[:, 7, 1] > j[:, 8, 1]  # the left ankle is the higher one
        assert 0.4 < float(left_free.float().mean()) < 0.6, name
        for side, hip, knee, ankle, stance_ankle, rows in ((1.0, 1, 4, 7, 8, left_free), (-1.0, 2, 5, 8, 7, ~left_free)):
            free, stance, pelvis = j[rows, ankle], j[rows, stance_ankle], j[rows, 0]
            lift = float((free[:, 1] - stance[:, 1]).median())
            under = float((stance - pelvis)[:, [0, 2]].norm(dim=-1).median())  # the stance foot, across the floor
            forward = float((free[:, 2] - pelvis[:, 2]).median())  # the free ankle in front (+) or behind (-)
            out = side * float((free[:, 0] - pelvis[:, 0]).median())  # to the free leg's own side
            knee_out = side * float((j[rows, knee, 0] - j[rows, hip, 0]).median())
            knee_fwd = float((j[rows, knee, 2] - j[rows, hip, 2]).median())
            assert lift > 0.12 and under < 0.2, (name, side, lift, under)
            checks = {
                "knee_up": knee_fwd > 0.2 and forward > 0.05,
                "foot_back": forward < -0.15 and abs(knee_fwd) < 0.2,
                "leg_side": out > 0.3,
                "leg_back": forward < -0.2 and knee_fwd < 0.0,
                "turned_out": knee_out > 0.15 and knee_fwd > 0.05,
            }
            assert checks[name], (name, side, forward, out, knee_out, knee_fwd)
    pose = one_leg_balance(torch.zeros(n, 23, 3), 1.0, torch.Generator().manual_seed(5))
    j, rest = _rest_joints(body, pose), _rest_joints(body, torch.zeros(1, 23, 3))
    arms_out = ((j[:, [20, 21]] - rest[:, [20, 21]]).norm(dim=-1) > 0.15).all(dim=1)  # both wrists moved off the sides
    assert 0.55 < float(arms_out.float().mean()) < 0.8


def test_one_leg_balance_changes_only_the_standing_bodies_and_not_the_benchmark(body: BodyModel) -> None:
    """With fraction 0 nothing changes and nothing is drawn (the benchmark's scenes stay the same);
    with fraction f about f of the bodies marked standing change, and no other; in ``sample_scene``
    only standing, walking and reaching bodies stand on one leg."""
    pose, plain = unchanged_at_zero(body, one_leg_balance, "balance")
    standing = torch.arange(len(pose)) % 2 == 0
    some = one_leg_balance(pose, 0.6, torch.Generator().manual_seed(7), standing)
    changed = (some - pose).abs().amax(dim=-1).amax(dim=-1) > 1e-6  # [n]
    assert not changed[~standing].any()
    assert 0.55 < float(changed[standing].float().mean()) < 0.65
    balanced = sample_scene(body, 64, 2, torch.Generator().manual_seed(6), balance=1.0)
    again = sample_scene(body, 64, 2, torch.Generator().manual_seed(6))
    upright = torch.tensor([name in BALANCE_ACTIVITIES for name in again.activities])
    assert balanced.activities == again.activities and 5 < int(upright.sum()) < 40
    moved = (balanced.body_pose - again.body_pose).abs().amax(dim=-1).amax(dim=-1) > 1e-6
    assert torch.equal(moved, upright)
