"""Accuracy metrics in millimetres (numpy-free torch, batched)."""

from __future__ import annotations

from torch import Tensor

from engine.body.metrics import pa_mpjpe, similarity

__all__ = ["ARM_JOINTS", "mpjpe", "mpvpe", "pa_mpjpe", "similarity"]  # the Procrustes pair lives in the product


def mpjpe(pred: Tensor, gt: Tensor, root: int = 0) -> Tensor:
    """Mean per-joint position error ``[N]`` after aligning joint ``root``; inputs ``[N, J, 3]``."""
    return ((pred - pred[:, root : root + 1]) - (gt - gt[:, root : root + 1])).norm(dim=-1).mean(dim=-1)


# SMPL elbows and wrists: the arm joints the real footage showed weakest (issue 27)
ARM_JOINTS = (18, 19, 20, 21)


def mpvpe(pred_vertices: Tensor, gt_vertices: Tensor, pred_root: Tensor, gt_root: Tensor) -> Tensor:
    """Mean per-vertex error ``[N]`` after aligning the roots ``[N, 3]``."""
    return ((pred_vertices - pred_root[:, None]) - (gt_vertices - gt_root[:, None])).norm(dim=-1).mean(dim=-1)
