"""Turn 2D detections (+ cameras when calibrated) into the model's per-view inputs.

Shared by training and inference so that both see exactly the same crops and heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

L_HIP, R_HIP = 11, 12


@dataclass
class ViewInputs:
    """obs_xy ``[B, V, 17, 2]`` crop coordinates, obs_conf ``[B, V, 17]``, boxes ``[B, V, 3]``
    (x0, y0, size px); when calibrated: K_crop ``[B, V, 3, 3]`` (intrinsics in crop units) and
    root_cam ``[B, V, 3]`` (mid-hip position in each camera frame, metres) and R ``[B, V, 3, 3]``
    (world-to-camera rotations), else None."""

    obs_xy: Tensor
    obs_conf: Tensor
    boxes: Tensor
    K_crop: Tensor | None = None
    root_cam: Tensor | None = None
    R: Tensor | None = None

    @property
    def calibrated(self) -> bool:
        return self.K_crop is not None

    def rows(self, rows: slice) -> ViewInputs:
        """The samples ``rows`` of the batch."""
        return ViewInputs(*(None if v is None else v[rows] for v in self._values()))  # type: ignore[arg-type]

    @staticmethod
    def cat(batches: list[ViewInputs]) -> ViewInputs:
        """Batches of the same number of views and mode (each row with its own cameras), one after the
        other as one batch."""
        if len(batches) == 1:
            return batches[0]
        columns = zip(*(b._values() for b in batches), strict=True)
        return ViewInputs(*(None if c[0] is None else torch.cat(c) for c in columns))  # type: ignore[arg-type]

    def _values(self) -> tuple[Tensor | None, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


def crop_boxes(observed: Tensor, scale: float = 1.25, min_size: float = 32.0) -> Tensor:
    """Square boxes ``[B, V, 3]`` around the confident keypoints of ``observed`` ``[B, V, 17, 3]``."""
    seen = observed[..., 2] > 0
    big = torch.finfo(observed.dtype).max
    lo = torch.where(seen[..., None], observed[..., :2], torch.full_like(observed[..., :2], big)).amin(dim=2)
    hi = torch.where(seen[..., None], observed[..., :2], torch.full_like(observed[..., :2], -big)).amax(dim=2)
    any_seen = seen.any(dim=2, keepdim=True)
    lo = torch.where(any_seen, lo, torch.zeros_like(lo))
    hi = torch.where(any_seen, hi, torch.ones_like(hi))
    size = ((hi - lo).amax(dim=-1) * scale).clamp_min(min_size)
    return torch.cat([(lo + hi) / 2 - size[..., None] / 2, size[..., None]], dim=-1)


def triangulate_root(observed: Tensor, K: Tensor, R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Mid-hip in world coordinates ``[B, 3]`` by confidence-weighted DLT of the hip midpoints,
    and a mask ``[B]`` of samples where at least two views saw both hips."""
    w = torch.minimum(observed[..., L_HIP, 2], observed[..., R_HIP, 2])  # [B, V]
    mid = 0.5 * (observed[..., L_HIP, :2] + observed[..., R_HIP, :2])
    P = K @ torch.cat([R, t[..., None]], dim=-1)  # [B, V, 3, 4]
    rows = torch.cat([mid[..., 0:1] * P[..., 2, :] - P[..., 0, :], mid[..., 1:2] * P[..., 2, :] - P[..., 1, :]], dim=1)
    rows = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    rows = rows * torch.cat([w, w], dim=1)[..., None]
    _, _, vh = torch.linalg.svd(rows)
    X = vh[:, -1]
    ok = ((w > 0).sum(dim=1) >= 2) & (X[:, 3].abs() > 1e-9)
    point = X[:, :3] / torch.where(ok, X[:, 3], torch.ones_like(X[:, 3]))[:, None]
    return point, ok


def prepare(observed: Tensor, K: Tensor | None = None, R: Tensor | None = None, t: Tensor | None = None,
            root_world: Tensor | None = None) -> ViewInputs:  # fmt: skip
    """Per-view model inputs from detections ``[B, V, 17, 3]`` (pixels). With cameras (K, R, t)
    and the mid-hip ``root_world`` ``[B, 3]`` the inputs are calibrated."""
    boxes = crop_boxes(observed)
    obs_xy = (observed[..., :2] - boxes[..., None, :2]) / boxes[..., None, 2:3]
    obs_conf = observed[..., 2]
    if K is None or R is None or t is None or root_world is None:
        return ViewInputs(obs_xy, obs_conf, boxes)
    to_crop = torch.zeros_like(K)
    to_crop[..., 0, 0] = 1.0 / boxes[..., 2]
    to_crop[..., 1, 1] = 1.0 / boxes[..., 2]
    to_crop[..., 0, 2] = -boxes[..., 0] / boxes[..., 2]
    to_crop[..., 1, 2] = -boxes[..., 1] / boxes[..., 2]
    to_crop[..., 2, 2] = 1.0
    root_cam = (R @ root_world[:, None, :, None])[..., 0] + t
    return ViewInputs(obs_xy, obs_conf, boxes, to_crop @ K, root_cam, R)
