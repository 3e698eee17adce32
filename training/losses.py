"""Training targets and losses for HeatFormer-S (per view, in each camera's frame)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from engine.body.lbs import axis_angle_to_matrix, rotation_6d_to_matrix
from engine.heatformer.inputs import L_HIP, R_HIP, ViewInputs
from engine.heatformer.model import Estimate
from training.metrics import similarity
from training.synth.scene import Scene, project


@dataclass
class Targets:
    """orient ``[B, V, 3, 3]`` body to camera, pose ``[B, 23, 3, 3]``, betas ``[B, 10]``,
    joints ``[B, V, 24, 3]`` (camera frame, relative to the mid-hip), keypoints2d ``[B, V, 17, 2]``
    (noise-free projection in crop coordinates)."""

    orient: Tensor
    pose: Tensor
    betas: Tensor
    joints: Tensor
    keypoints2d: Tensor


def targets(scene: Scene, inputs: ViewInputs) -> Targets:
    root = 0.5 * (scene.keypoints3d[:, L_HIP] + scene.keypoints3d[:, R_HIP])
    rel = scene.joints - root[:, None]
    joints = torch.einsum("bvij,bnj->bvni", scene.R, rel)
    pix, _ = project(scene.keypoints3d, scene.K, scene.R, scene.t)
    crop = (pix - inputs.boxes[..., None, :2]) / inputs.boxes[..., None, 2:3]
    return Targets(scene.R @ scene.body_to_world[:, None], axis_angle_to_matrix(scene.body_pose), scene.betas, joints, crop)


@dataclass(frozen=True)
class LossWeights:
    joints3d: float = 5.0
    keypoints2d: float = 1.0
    rotation: float = 0.5
    betas: float = 0.02
    # Joints in the body's own frame (each side rotated back by its own global orientation): the
    # articulated pose and shape alone, as PA-MPJPE scores them. One view leaves the global
    # orientation partly open, and its error otherwise dominates the joint term.
    local_joints: float = 0.0
    # Joints after the best similarity transform onto the truth (Procrustes), as PA-MPJPE scores
    # them: also forgives the overall size, which one view cannot tell from the distance. The
    # transform is held fixed in the gradient. For the aligned squared error that is the exact
    # gradient (the transform is its minimiser); for the mean distance used here, a close one.
    pa_joints: float = 0.0


DEFAULT_WEIGHTS = LossWeights()


def loss(states: list[Estimate], target: Targets, w: LossWeights = DEFAULT_WEIGHTS) -> tuple[Tensor, dict[str, float]]:
    """Sum over the initial state and every iteration, later iterations weighted more."""
    total = torch.zeros(())
    parts: dict[str, float] = {}
    n = len(states)
    for i, s in enumerate(states):
        weight = 0.2 if i == 0 else (i + 1) / n
        assert s.joints is not None and s.keypoints2d is not None
        j3d = (s.joints - target.joints).norm(dim=-1).mean()
        k2d = (s.keypoints2d - target.keypoints2d).abs().clamp(max=1.0).mean()
        R = rotation_6d_to_matrix(s.orient)
        orient = (R - target.orient).square().mean()
        terms = w.joints3d * j3d + w.keypoints2d * k2d + w.rotation * orient
        if w.local_joints > 0:
            local = (s.joints @ R - target.joints @ target.orient).norm(dim=-1).mean()
            terms = terms + w.local_joints * local
            parts[f"local_mm_{i}"] = float(local.detach()) * 1000.0
        if w.pa_joints > 0:
            pa = aligned_error(s.joints, target.joints)
            terms = terms + w.pa_joints * pa
            parts[f"pa_mm_{i}"] = float(pa.detach()) * 1000.0
        if i > 0:
            pose = (rotation_6d_to_matrix(s.pose) - target.pose[:, None]).square().mean()
            betas = (s.betas - target.betas[:, None]).square().mean()
            terms = terms + w.rotation * pose + w.betas * betas
        total = total + weight * terms
        parts[f"mpjpe_mm_{i}"] = float(j3d.detach()) * 1000.0
        parts[f"kp2d_{i}"] = float(k2d.detach())
    parts["loss"] = float(total.detach())
    return total, parts


def aligned_error(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean joint distance after aligning each of ``pred`` ``[..., J, 3]`` onto ``gt`` by its best
    similarity transform, the transform computed without gradient."""
    p, g = pred.reshape(-1, *pred.shape[-2:]), gt.reshape(-1, *gt.shape[-2:])
    with torch.no_grad():
        scale, rot, mu_p, mu_g = similarity(p.detach().double(), g.double())
    aligned = scale.to(p)[:, None, None] * (p - mu_p.to(p)) @ rot.to(p).transpose(1, 2) + mu_g.to(p)
    return (aligned - g).norm(dim=-1).mean()
