"""The baseline a user would otherwise pick: triangulation + an optimisation fit of the body model.

Calibrated: confidence-weighted DLT of all 17 keypoints, then Adam on the body's pose, shape,
orientation and position against the triangulated points and the reprojection into every view,
with pose and shape priors. Uncalibrated: per view, a fit to the 2D keypoints with a
weak-perspective camera and the same priors. Both run batched over frame-sets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.body.lbs import matrix_to_rotation_6d, rotation_6d_to_matrix
from engine.body.model import BodyModel
from engine.heatformer.inputs import L_HIP, R_HIP, ViewInputs
from engine.heatformer.model import IDENTITY_6D
from training.synth.scene import Scene, project

L_SHOULDER, R_SHOULDER = 5, 6


def triangulate_points(observed: Tensor, K: Tensor, R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """DLT of every keypoint: points ``[B, 17, 3]`` and valid ``[B, 17]`` (two views or more)."""
    w = observed[..., 2].transpose(1, 2)  # [B, 17, V]
    P = (K @ torch.cat([R, t[..., None]], dim=-1))[:, None]  # [B, 1, V, 3, 4]
    xy = observed[..., :2].transpose(1, 2)  # [B, 17, V, 2]
    rows = torch.cat([xy[..., 0:1] * P[..., 2, :] - P[..., 0, :], xy[..., 1:2] * P[..., 2, :] - P[..., 1, :]], dim=2)
    rows = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-9) * torch.cat([w, w], dim=2)[..., None]
    _, _, vh = torch.linalg.svd(rows)
    X = vh[..., -1, :]
    valid = ((w > 0).sum(dim=-1) >= 2) & (X[..., 3].abs() > 1e-9)
    return X[..., :3] / torch.where(valid, X[..., 3], torch.ones_like(X[..., 3]))[..., None], valid


def _priors(pose6d: Tensor, betas: Tensor) -> Tensor:
    eye = torch.eye(3)
    return (
        0.02 * (rotation_6d_to_matrix(pose6d) - eye).square().sum(dim=(-1, -2, -3)).mean() + 0.005 * betas.square().sum(-1).mean()
    )


def fit_calibrated(body: BodyModel, scene: Scene, inputs: ViewInputs, steps: int) -> tuple[Tensor, Tensor]:
    """Fitted joints ``[B*V, 24, 3]`` and vertices in each camera frame."""
    B, V = scene.R.shape[:2]
    points, valid = triangulate_points(scene.observed, scene.K, scene.R, scene.t)
    conf = scene.observed[..., 2].mean(dim=1) * valid
    points = torch.where(valid[..., None], points, torch.zeros_like(points))
    orient = matrix_to_rotation_6d(_upright_facing(points, valid)).clone().requires_grad_(True)
    pose = IDENTITY_6D.repeat(B, 23, 1).requires_grad_(True)
    betas = torch.zeros(B, 10, requires_grad=True)
    hips = (valid[:, L_HIP] & valid[:, R_HIP])[:, None]
    weighted = (points * conf[..., None]).sum(1) / conf.sum(1, keepdim=True).clamp_min(1e-6)
    centre = torch.where(hips, 0.5 * (points[:, L_HIP] + points[:, R_HIP]), weighted)
    transl = centre.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([orient, pose, betas, transl], lr=0.03)
    scale = inputs.boxes[..., 2]  # px per view
    for _ in range(steps):
        kp = _keypoints(body, orient, pose, betas, transl)
        loss3d = (conf * (kp - points).square().sum(-1)).sum(-1).mean()
        pix, _ = project(kp, scene.K, scene.R, scene.t)
        reproj = (
            (scene.observed[..., 2] * ((pix - scene.observed[..., :2]) / scale[..., None, None]).square().sum(-1)).sum(-1).mean()
        )
        loss = 10.0 * loss3d + reproj + _priors(pose, betas)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        rot = rotation_6d_to_matrix(torch.cat([orient[:, None], pose], dim=1))
        cam_orient = scene.R @ rot[:, None, 0]  # [B, V, 3, 3]
        full = torch.cat([cam_orient.reshape(B * V, 1, 3, 3), rot[:, 1:].repeat_interleave(V, dim=0)], dim=1)
        out = body.forward_rotmat(betas.repeat_interleave(V, dim=0), full)
    assert out.vertices is not None
    return out.joints, out.vertices


def fit_uncalibrated(body: BodyModel, scene: Scene, inputs: ViewInputs, steps: int) -> tuple[Tensor, Tensor]:
    """Per-view fits to the 2D keypoints (weak perspective): joints ``[B*V, 24, 3]``, vertices."""
    B, V = scene.R.shape[:2]
    n = B * V
    obs, conf = inputs.obs_xy.reshape(n, 17, 2), inputs.obs_conf.reshape(n, 17)
    facing = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # upright, facing the camera
    orient = matrix_to_rotation_6d(facing).repeat(n, 1).requires_grad_(True)
    pose = IDENTITY_6D.repeat(n, 23, 1).requires_grad_(True)
    betas = torch.zeros(n, 10, requires_grad=True)
    cam = torch.zeros(n, 3, requires_grad=True)
    optimizer = torch.optim.Adam([orient, pose, betas, cam], lr=0.03)
    for _ in range(steps):
        kp = _keypoints(body, orient, pose, betas, None)
        root = 0.5 * (kp[:, L_HIP] + kp[:, R_HIP])
        xy = 0.5 * torch.exp(cam[:, None, 0:1]) * (kp - root[:, None])[..., :2] + 0.5 + cam[:, None, 1:3]
        loss = (conf * (xy - obs).square().sum(-1)).sum(-1).mean() + _priors(pose, betas)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = body.forward_rotmat(betas, rotation_6d_to_matrix(torch.cat([orient[:, None], pose], dim=1)))
    assert out.vertices is not None
    return out.joints, out.vertices


def _keypoints(body: BodyModel, orient: Tensor, pose: Tensor, betas: Tensor, transl: Tensor | None) -> Tensor:
    rot = rotation_6d_to_matrix(torch.cat([orient[:, None], pose], dim=1))
    out = body.joints_rotmat(betas, rot)
    assert out.keypoints is not None
    kp = out.keypoints
    if transl is None:
        return kp
    root = 0.5 * (kp[:, L_HIP] + kp[:, R_HIP])
    return kp - root[:, None] + transl[:, None]


def _upright_facing(points: Tensor, valid: Tensor) -> Tensor:
    """Body-to-world rotations ``[B, 3, 3]``: upright (body Y = world Z), facing away from the
    line through the shoulders (left = +X of the body)."""
    across = points[:, L_SHOULDER] - points[:, R_SHOULDER]
    across = torch.where((valid[:, L_SHOULDER] & valid[:, R_SHOULDER])[:, None], across, torch.tensor([1.0, 0.0, 0.0]))
    across[:, 2] = 0.0
    x = across / across.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    y = torch.tensor([0.0, 0.0, 1.0]).expand_as(x)
    z = torch.cross(x, y, dim=-1)
    return torch.stack([x, y, z], dim=-1)
