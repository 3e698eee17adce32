"""Synthetic data: CMU retargeting on real clips, the recorded-pose bank, activity poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.body import BodyModel
from engine.body.model_file import SMPL_PARENTS
from engine.synth.cmu import parse_asf, retarget
from engine.synth.scene import HELD_OUT_CLIPS, PoseBank, sample_scene

CMU = Path(__file__).resolve().parents[1] / "assets" / "synth" / "cmu"


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_file()


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
