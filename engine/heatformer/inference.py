"""Run HeatFormer-S over a keypoints exchange file and build the body results arrays."""

from __future__ import annotations

import numpy as np
import torch

from calibration.geometry import matrix_to_rodrigues, undistort_pixels
from engine.body.lbs import rotation_6d_to_matrix
from engine.exchange import KeypointsFile
from engine.heatformer.fusion import fuse_views
from engine.heatformer.inputs import L_HIP, R_HIP, prepare, triangulate_root
from engine.heatformer.model import HeatFormer

FORMAT_VERSION = 1


def body_results(model: HeatFormer, data: KeypointsFile, uncalibrated: bool = False) -> dict[str, np.ndarray]:
    """Body results (DESIGN.md): per frame a fused world body when the views are calibrated (and
    at least two saw the hips), and per view parameters plus weak-perspective cameras always."""
    T, V = data.keypoints.shape[:2]
    calibrated = data.calibrated and not uncalibrated
    out = {
        "global_orient": np.full((T, 3), np.nan), "body_pose": np.full((T, 23, 3), np.nan),
        "betas": np.full((T, 10), np.nan), "transl": np.full((T, 3), np.nan), "joints": np.full((T, 24, 3), np.nan),
        "view_global_orient": np.zeros((T, V, 3)), "view_body_pose": np.zeros((T, V, 23, 3)),
        "view_betas": np.zeros((T, V, 10)), "view_cam": np.zeros((T, V, 3)), "view_boxes": np.zeros((T, V, 3)),
        "valid": np.zeros(T, bool), "fused": np.zeros(T, bool),
    }  # fmt: skip
    K = R = t = None
    if calibrated:
        K, R, t = (torch.as_tensor(np.asarray(a, np.float64), dtype=torch.float32)[None] for a in (data.K, data.R, data.t))
    for frame in range(T):
        observed = data.keypoints[frame].astype(np.float64)
        if calibrated and data.dist is not None and data.K is not None:
            K_np, dist = data.K, data.dist
            observed[..., :2] = np.stack([undistort_pixels(observed[v, :, :2], K_np[v], dist[v]) for v in range(V)])
        obs = torch.as_tensor(observed, dtype=torch.float32)[None]
        out["valid"][frame] = bool((obs[..., 2] > 0).any())
        root = None
        if K is not None and R is not None and t is not None:
            point, ok = triangulate_root(obs, K, R, t)
            root = point if bool(ok[0]) else None  # hips seen in fewer than 2 views: per-view mode
        inputs = prepare(obs, K, R, t, root) if root is not None else prepare(obs)
        with torch.no_grad():
            state = model(inputs)[-1]
        orient = rotation_6d_to_matrix(state.orient[0]).double().numpy()
        pose = rotation_6d_to_matrix(state.pose[0]).double().numpy()
        betas = state.betas[0].double().numpy()
        out["view_global_orient"][frame] = matrix_to_rodrigues(orient)
        out["view_body_pose"][frame] = matrix_to_rodrigues(pose)
        out["view_betas"][frame], out["view_cam"][frame] = betas, state.cam[0].numpy()
        out["view_boxes"][frame] = inputs.boxes[0].numpy()
        if root is not None and R is not None:
            _fuse(model, out, frame, orient, pose, betas, R[0].double().numpy(), root[0].double().numpy(), observed)
    out["timestamps"] = np.asarray(data.timestamps, np.float64)
    out["format_version"] = np.array(FORMAT_VERSION)
    out["camera_names"] = np.array(data.camera_names)
    return out


def _fuse(model: HeatFormer, out: dict[str, np.ndarray], frame: int, orient: np.ndarray, pose: np.ndarray,
          betas: np.ndarray, R: np.ndarray, root: np.ndarray, observed: np.ndarray) -> None:  # fmt: skip
    weights = observed[..., 2].mean(axis=1) + 1e-6  # views that saw more of the body count more
    world_orient, world_pose, world_betas = fuse_views(orient, pose, betas, R, weights)
    rot = torch.as_tensor(np.concatenate([world_orient[None], world_pose]), dtype=torch.float32)[None]
    body = model.body.joints_rotmat(torch.as_tensor(world_betas, dtype=torch.float32)[None], rot)
    assert body.keypoints is not None
    mid_hip = 0.5 * (body.keypoints[0, L_HIP] + body.keypoints[0, R_HIP]).double().numpy()
    transl = root - mid_hip  # put the body's mid-hip on the triangulated one
    out["global_orient"][frame] = matrix_to_rodrigues(world_orient)
    out["body_pose"][frame] = matrix_to_rodrigues(world_pose)
    out["betas"][frame], out["transl"][frame] = world_betas, transl
    out["joints"][frame] = body.joints[0].double().numpy() + transl
    out["fused"][frame] = True
