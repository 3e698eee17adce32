"""Joint metrics that ignore where, how large and which way round a body is (torch, batched):
the best similarity transform (Procrustes) and the mean joint error after it (PA-MPJPE). Used by the
real-data benchmark (engine.realbench) and the training lab's synthetic one (training.metrics)."""

from __future__ import annotations

import torch
from torch import Tensor


def similarity(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The similarity transform that best maps ``pred`` onto ``gt`` (both ``[N, J, 3]``, least
    squares, Procrustes): ``scale`` ``[N]``, ``rot`` ``[N, 3, 3]`` and the two centroids
    ``[N, 1, 3]``; the aligned points are ``scale * (pred - mu_p) @ rot.T + mu_g``."""
    mu_p, mu_g = pred.mean(dim=1, keepdim=True), gt.mean(dim=1, keepdim=True)
    p, g = pred - mu_p, gt - mu_g
    cov = g.transpose(1, 2) @ p  # [N, 3, 3]
    u, s, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.det(u @ vt))
    flip = torch.ones_like(s)
    flip[:, -1] = d
    rot = u @ torch.diag_embed(flip) @ vt
    scale = (s * flip).sum(dim=-1) / p.square().sum(dim=(1, 2)).clamp_min(1e-12)
    return scale, rot, mu_p, mu_g


def pa_mpjpe(pred: Tensor, gt: Tensor, joints: tuple[int, ...] | None = None) -> Tensor:
    """Mean per-joint error ``[N]`` after the best similarity transform (Procrustes) of all joints;
    with ``joints``, the error averaged over those joints only (the alignment still uses all)."""
    scale, rot, mu_p, mu_g = similarity(pred, gt)
    aligned = scale[:, None, None] * (pred - mu_p) @ rot.transpose(1, 2) + mu_g
    errors = (aligned - gt).norm(dim=-1)
    return (errors if joints is None else errors[:, list(joints)]).mean(dim=-1)
